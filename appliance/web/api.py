"""The job API: the small HTTP surface the kiosk and phone screens are built on.

    POST   /api/jobs                       upload a photo (raw body) and start a job -> 202
    GET    /api/jobs/<id>                  state, progress, result facts (session token)
    GET    /api/jobs/<id>/result           the result image (session or one-time download token)
    POST   /api/jobs/<id>/download-token   a one-time token for the result (the QR code)
    DELETE /api/jobs/<id>                  delete now: everything of the job is wiped

Every error is a ``UserFacingError`` rendered as JSON by the app factory. Uploads are read with
``request.stream.readinto`` into a secure buffer (see ``appliance.web.upload``); this module never
touches ``request.data``, ``request.files`` or ``request.get_data()``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from appliance.effects.registry import get_effect
from appliance.errors import UserFacingError
from appliance.jobs.job import Job, JobState
from appliance.jobs.manager import JobManager
from appliance.numbers import parse_ascii_int
from appliance.web.delivery import SecureBody
from appliance.web.guarded_worker import client_gone
from appliance.web.upload import check_upload_headers, read_body

CONSENT_HEADER = "X-Ephemera-Consent"
CONSENT_VALUE = "adults-consenting"
DELETE_WAIT_S = 5.0  # how long DELETE waits for a running job's wipe before answering 202

api = Blueprint("api", __name__, url_prefix="/api")


@api.after_request
def _never_cached(response: Response) -> Response:
    """Tokens, job states and results: nothing from this API may sit in a browser's cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _manager() -> JobManager:
    manager: JobManager = current_app.extensions["ephemera.jobs"]
    return manager


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    return parse_ascii_int(raw, name, low, high)


def _require_consent() -> None:
    given = request.headers.get(CONSENT_HEADER) or request.args.get("consent")
    if given != CONSENT_VALUE:
        raise UserFacingError(
            "consent_required", "Everyone in the photo must agree, and must be an adult.",
            status=400, remedy=f"Confirm consent: send '{CONSENT_HEADER}: {CONSENT_VALUE}' "
                               f"(or ?consent={CONSENT_VALUE}) with the photo.")


@api.post("/jobs")
def create_job() -> Any:
    """Consent, session, headers and queue are checked before a byte of the body is read."""
    manager = _manager()
    _require_consent()
    effect = get_effect(request.args.get("kind", "faces"))
    effect.check_photo_count(1)  # this route takes one photo
    params = effect.validate_params({p.name: request.args[p.name] for p in effect.params
                                     if request.args.get(p.name, "") != ""})
    retention = _int_arg("retention_minutes", None, 1, manager.cfg.retention.hard_cap_minutes)
    runner = current_app.extensions["ephemera.work"]
    length = check_upload_headers(request, runner.max_upload_bytes)
    job, new_token = manager.create_job(_bearer(), effect.key, retention_minutes=retention,
                                        params=params)
    try:
        job.set_progress("receiving", 0.0)
        upload = read_body(request, length, owner=job.id)
        job.set_progress("decoding", 0.05)
        runner.receive(job, upload)
    except UserFacingError as exc:
        manager.fail_received(job, exc, new_session=new_token is not None)
        raise
    except Exception:
        manager.fail_received(job, UserFacingError("internal_error", "upload failed",
                                                   status=500),
                              new_session=new_token is not None)
        raise
    if client_gone(request.environ):  # nobody would ever get this job's token: drop it now
        manager.fail_received(job, UserFacingError("client_gone", "The upload's connection "
                                                   "closed.", status=400),
                              new_session=new_token is not None)
        return Response(status=204)
    manager.enqueue(job, runner.work)
    body: dict[str, Any] = {
        "job_id": job.id,
        "state": job.state.value,
        "status_url": url_for("api.job_status", job_id=job.id),
        "result_url": url_for("api.job_result", job_id=job.id),
        "expires_at": round(job.expires_at, 3),
    }
    if new_token is not None:
        body["session_token"] = new_token
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["status_url"]
    return response


@api.get("/jobs/<job_id>")
def job_status(job_id: str) -> Any:
    return jsonify(_manager().job_for_session(job_id, _bearer()).status())


def _result_job(job_id: str) -> Job:
    download = request.args.get("download")
    if download:  # checked here, spent only when the bytes go out (see job_result)
        return _manager().job_for_download(job_id, download, spend=False)
    return _manager().job_for_session(job_id, _bearer())


@api.get("/jobs/<job_id>/result")
def job_result(job_id: str) -> Any:
    """Decrypt into a secure buffer and stream it; the buffer is wiped when the response ends.

    A one-time download token is spent only by a GET that sends the picture: a 409 while the
    job runs, a HEAD (a phone's link preview) or an error leaves it valid.
    """
    job = _result_job(job_id)
    download = request.args.get("download")
    store = current_app.extensions["ephemera.store"]
    with job.lock:
        if job.state is JobState.FAILED and job.error is not None:
            raise job.error.detached()  # the kept error stays free of request frames
        if job.state is not JobState.DONE or job.result is None:
            raise UserFacingError("not_ready", "The picture is not ready yet.", status=409,
                                  retry_after_s=1, remedy="Poll the job's status_url until "
                                  "its state is 'done'.")
        content_type = job.result.content_type
        if request.method == "HEAD":
            response = Response(status=200, mimetype=content_type)
            response.headers["Content-Length"] = str(job.result.nbytes)
            response.headers["Referrer-Policy"] = "no-referrer"
            return response
        if download:
            _manager().spend_download(job, download)
        plaintext = store.get(job.id, job.result.name, job.key)
    body = SecureBody(plaintext)
    response = Response(body, status=200, mimetype=content_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(len(body))
    response.headers["Content-Disposition"] = "inline; filename=\"ephemera-result\""
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@api.post("/jobs/<job_id>/download-token")
def download_token(job_id: str) -> Any:
    manager = _manager()
    job = manager.job_for_session(job_id, _bearer())
    token, expires_in = manager.issue_download_token(job)
    return jsonify({
        "download_token": token,
        "download_url": url_for("api.job_result", job_id=job.id, download=token),
        "expires_in_s": expires_in,
        "single_use": True,
    })


@api.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Any:
    manager = _manager()
    job = manager.job_for_session(job_id, _bearer())
    manager.release_job(job.id, "deleted")
    # Answer "deleted" only once it is true; a running job is wiped when its step ends.
    if manager.wait_wiped(job, DELETE_WAIT_S):
        return jsonify({"job_id": job.id, "deleted": True})
    response = jsonify({"job_id": job.id, "deleted": False, "state": "deleting"})
    response.status_code = 202
    return response
