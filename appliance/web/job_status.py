"""A job's status as its owner sees it: one shape for the status route and the progress stream.

Why one function: a phone that streams its progress and one that polls must read the same JSON
(state, progress, queue position, outputs with their URLs), so the stream, rendered on the
progress hub's thread without a request, builds its URLs with the adapter of the request that
opened it.
"""

from __future__ import annotations

from typing import Any

from appliance.jobs.job import Job


def job_status_body(job: Job, manager: Any, adapter: Any) -> dict[str, Any]:
    """``job.status()`` plus the queue position while it waits and each output's URL.

    ``adapter``: a Werkzeug ``MapAdapter`` bound to the request (``url_for`` uses the same)."""
    body = job.status()
    if body.get("state") == "queued":  # where the guest stands: 1 is next
        body["queue_position"] = manager.queue_position(job.id)
    for output in body.get("outputs", []):
        output["url"] = adapter.build("api.job_output",
                                      {"job_id": job.id, "name": output["name"]})
    return body
