"""P3 through the real service: a canary planted in an upload is in the live process while the
job lives, and nowhere in it once the job is released.

The service is the real one (``python -m appliance serve``: gunicorn, one gthread worker, the
malloc environment, the reference models on ONNX Runtime); the test talks HTTP to 127.0.0.1 and
reads the worker's memory through /proc/PID/maps and /proc/PID/mem.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.secure.buffers import memfd_secret_available
from tests.helpers import service as svc
from tests.helpers.images import encode, png_chunk_span, with_canary
from tests.helpers.memscan import Canary, encoded_patterns, process_tree, scan

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def canary_upload(seed: int) -> tuple[bytes, dict[str, bytes]]:
    canary = Canary.random(seed=seed)
    png = encode(with_canary(canary), ".png")
    start, end = png_chunk_span(png)
    return png, {**encoded_patterns(png, start, end), **canary.pixel_patterns()}


def run_job(service: svc.Service, png: bytes) -> tuple[str, str]:
    reply = service.upload(png)
    assert reply.status == 202, reply.body
    job_id, token = reply.json()["job_id"], reply.json()["session_token"]
    status = service.wait_for_job(job_id, token)
    assert status["state"] == "done", status
    return job_id, token


def report(name: str, figures: dict[str, object]) -> None:
    """Measured figures for docs/THREAT_MODEL.md, shown with ``pytest -s``."""
    print(f"\n[{name}] " + json.dumps(figures, sort_keys=True))


def test_canary_found_while_the_job_lives_and_gone_after_release(service: svc.Service) -> None:
    png, patterns = canary_upload(seed=11)
    # The service fixture runs with memfd_secret off, so the scanner can see inside.
    job_id, token = run_job(service, png)
    result = service.get(f"/api/jobs/{job_id}/result", token)
    assert result.status == 200 and result.body[:3] == b"\xff\xd8\xff"
    assert result.headers["cache-control"] == "no-store"
    # The delivered JPEG is guest data too: its bytes must not outlive the response
    # (decrypted plaintext, the response chunks) in the service.
    patterns.update({name.replace("png", "result"): window for name, window in
                     encoded_patterns(result.body, 1024, len(result.body)).items()})

    alive = scan(process_tree(service.pid), patterns)
    forms = alive.by_form()
    # The scanner sees the live job: the uploaded PNG and the decoded BGR pixels.
    assert forms["png"] > 0, forms
    assert forms["bgr"] > 0, forms
    assert alive.bytes_scanned > 10 << 20

    deleted = service.request("DELETE", f"/api/jobs/{job_id}",
                              headers={"Authorization": f"Bearer {token}"})
    assert deleted.status == 200, deleted.body
    after = scan(process_tree(service.pid), patterns)
    assert service.store_files() == []
    report("canary-memfd-off", {"alive": forms, "after": after.by_form(),
                                "bytes_scanned": after.bytes_scanned,
                                "regions": after.regions, "pids": len(after.pids)})
    assert {name: n for name, n in after.by_form().items() if n} == {}
    assert after.bytes_scanned > 10 << 20


@pytest.mark.skipif(not memfd_secret_available(), reason="this kernel has no memfd_secret "
                    "(Linux < 5.14 or secretmem disabled): buffers fall back to mlock'd memory")
def test_with_memfd_secret_even_a_live_job_is_invisible(tmp_path: Path) -> None:
    png, patterns = canary_upload(seed=12)
    with svc.running(tmp_path, memfd_secret=True) as service:
        job_id, token = run_job(service, png)
        alive = scan(process_tree(service.pid), patterns)
        service.request("DELETE", f"/api/jobs/{job_id}",
                        headers={"Authorization": f"Bearer {token}"})
        after = scan(process_tree(service.pid), patterns)
        report("canary-memfd-on", {"alive": alive.by_form(), "after": after.by_form(),
                                   "bytes_scanned": after.bytes_scanned})
        assert {name: n for name, n in alive.by_form().items() if n} == {}
        assert {name: n for name, n in after.by_form().items() if n} == {}
