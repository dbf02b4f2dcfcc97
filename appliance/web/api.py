"""The booth's API: the small HTTP surface the kiosk and phone screens are built on.

    GET    /api/effects                          the effects: photos, faces, params, outputs
    POST   /api/photos                           a photo (raw body): decoded, gated -> 201
    GET    /api/photos/<id>                      its size and faces (never its pixels)
    DELETE /api/photos/<id>                      wiped now
    POST   /api/jobs                             JSON {effect, photos, params} -> 202
    GET    /api/jobs/<id>                        state, progress, outputs (each with ready)
    GET    /api/jobs/<id>/events                 the same status as server-sent events
    GET    /api/jobs/<id>/outputs/<name>         one output (session or one-time token; Range)
    POST   /api/jobs/<id>/download-token         a one-time token for one output (the QR code)
    DELETE /api/jobs/<id>                        wiped now
    DELETE /api/session                          every photo and job of the session, now

Every error is a ``UserFacingError`` rendered as JSON by the app factory. Uploads are read with
``request.stream.readinto`` into a secure buffer (see ``appliance.web.upload``) and the small
JSON bodies with a bounded ``request.stream.read``; this module never touches ``request.data``,
``request.files``, ``request.get_json()`` or ``request.get_data()``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from appliance.effects.registry import effects, get_effect
from appliance.errors import UserFacingError
from appliance.jobs.effect_jobs import EffectJobRunner
from appliance.jobs.job import Job, JobState
from appliance.jobs.manager import JobManager, token_required
from appliance.jobs.photos import FaceRule
from appliance.numbers import parse_ascii_int
from appliance.web.access import on_lan, request_session_token
from appliance.web.delivery import SecureBody
from appliance.web.guarded_worker import client_gone
from appliance.web.job_request import read_job_request
from appliance.web.job_status import job_status_body
from appliance.web.progress_stream import progress_stream
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


def _runner() -> EffectJobRunner:
    runner: EffectJobRunner = current_app.extensions["ephemera.work"]
    return runner


_bearer = request_session_token


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


# -- effects ------------------------------------------------------------------------------------

@api.get("/effects")
def list_effects() -> Any:
    return jsonify({"effects": [effect.describe() for effect in effects().values()]})


# -- photos -------------------------------------------------------------------------------------

@api.post("/photos")
def upload_photo() -> Any:
    with current_app.extensions["ephemera.upload_slots"].held(on_lan()):
        return _upload_photo()


def _upload_photo() -> Any:
    """Consent, session, headers and store room are checked before a byte of the body is read.

    ``?effect=KEY`` gates for that effect (its faces per photo, eyes open); ``?faces=N``
    asks for exactly N faces; without either, 1 or 2 faces pass.
    """
    manager = _manager()
    _require_consent()
    effect_key = request.args.get("effect")
    effect = get_effect(effect_key) if effect_key else None
    rule = FaceRule.for_upload(effect, _int_arg("faces", None, 1, 2))
    retention = _int_arg("retention_minutes", None, 1, manager.cfg.retention.hard_cap_minutes)
    runner = _runner()
    length = check_upload_headers(request, runner.max_upload_bytes)
    photo, new_token = manager.create_photo(_bearer(), retention_minutes=retention)
    try:
        upload = read_body(request, length, owner=photo.scratch_owner)
        runner.receive_photo(photo, upload, rule)
    except UserFacingError as exc:
        manager.fail_photo(photo, exc, new_session=new_token is not None)
        raise
    except Exception:
        manager.fail_photo(photo, UserFacingError("internal_error", "upload failed",
                                                  status=500),
                           new_session=new_token is not None)
        raise
    if client_gone(request.environ):  # nobody would ever get this photo's token: drop it
        manager.fail_photo(photo, UserFacingError("client_gone", "The upload's connection "
                                                  "closed.", status=400),
                           new_session=new_token is not None)
        return Response(status=204)
    return photo_created(photo, new_token)


def photo_created(photo: Any, new_token: str | None, **extra: Any) -> Any:
    """The 201 answer for a kept photo (an upload or a capture): its faces, its URL and, for a
    new session, the session token."""
    body = photo.summary()
    body["url"] = url_for("api.photo_status", photo_id=photo.id)
    body.update(extra)
    if new_token is not None:
        body["session_token"] = new_token
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = body["url"]
    return response


@api.get("/photos/<photo_id>")
def photo_status(photo_id: str) -> Any:
    return jsonify(_manager().photo_for_session(photo_id, _bearer()).summary())


@api.delete("/photos/<photo_id>")
def delete_photo(photo_id: str) -> Any:
    manager = _manager()
    photo = manager.photo_for_session(photo_id, _bearer())
    manager.release_photo(photo.id, "deleted")
    return jsonify({"photo_id": photo.id, "deleted": True})


# -- effect jobs --------------------------------------------------------------------------------

def _check_faces(effect: Any, params: dict[str, Any], photo_ids: list[str],
                 token: str | None) -> None:
    """Each photo holds the faces the effect needs from it (422, naming the photo)."""
    wanted = effect.faces_per_photo(params, len(photo_ids))
    for index, photo_id in enumerate(photo_ids):
        photo = _manager().photo_for_session(photo_id, token)
        found = len(photo.faces)
        if found != wanted:
            code = "too_many_faces" if found > wanted else "too_few_faces"
            plural = "face" if wanted == 1 else "faces"
            raise UserFacingError(
                code, f"Photo {index + 1} shows {found} faces; {effect.title} needs {wanted} "
                f"{plural} in each of {len(photo_ids)} photo(s).", status=422,
                remedy="Choose photos with the right number of people, or take new ones.")


def _job_status(job: Job) -> dict[str, Any]:
    return job_status_body(job, _manager(), current_app.create_url_adapter(request))


@api.post("/jobs")
def create_job() -> Any:
    """An effect job on photos of this session; queued, then run by the one worker."""
    manager = _manager()
    token = _bearer()
    if not token:  # photos belong to a session: nothing to run without its token
        raise token_required()
    wanted = read_job_request(request)
    effect = get_effect(wanted.effect)
    effect.check_photo_count(len(wanted.photos))
    params = effect.validate_params(wanted.params)
    retention = _int_arg("retention_minutes", None, 1, manager.cfg.retention.hard_cap_minutes)
    _check_faces(effect, params, wanted.photos, token)
    job, _ = manager.create_job(token, effect.key, retention_minutes=retention, params=params,
                                photo_ids=wanted.photos, kiosk=not on_lan())
    _runner().start(job, effect, params)
    body = _job_status(job)
    body["status_url"] = url_for("api.job_status", job_id=job.id)
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["status_url"]
    return response


@api.get("/jobs/<job_id>")
def job_status(job_id: str) -> Any:
    return jsonify(_job_status(_manager().job_for_session(job_id, _bearer())))


@api.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> Any:
    """The job's status as server-sent events until it is done, failed or gone; the same
    checks and JSON as ``job_status``, and no request thread held while the guest waits."""
    manager = _manager()
    job = manager.job_for_session(job_id, _bearer())
    adapter = current_app.create_url_adapter(request)
    return progress_stream(job, partial(job_status_body, manager=manager, adapter=adapter))


def _result_job(job_id: str) -> Job:
    """The job of a session token, or of a one-time download token (checked here, spent only
    when bytes go out: see job_output)."""
    download = request.args.get("download")
    if download:  # checked here, spent only when the bytes go out (see job_output)
        return _manager().job_for_download(job_id, download, spend=False)
    return _manager().job_for_session(job_id, _bearer())


def _byte_range(total: int) -> tuple[int, int] | None:
    """The one byte range asked for, None for the whole file; 416 when it cannot be served.

    Several ranges in one request are answered with the whole file (RFC 9110 allows it; no
    player asks for them)."""
    asked = request.range
    if asked is None or asked.units != "bytes" or len(asked.ranges) != 1:
        return None
    span = asked.range_for_length(total)
    if span is None:
        raise UserFacingError(
            "range_not_satisfiable", f"The requested bytes are outside this {total}-byte file.",
            status=416, remedy="Ask for a range inside the file, or for the whole file.",
            headers={"Content-Range": f"bytes */{total}"})
    return span


@api.get("/jobs/<job_id>/outputs/<name>")
def job_output(job_id: str, name: str) -> Any:
    """Decrypt one output into a secure buffer and stream it (or the byte range asked for);
    the buffer is wiped when the response ends.

    A HEAD decrypts nothing. A one-time download token is spent only by a GET that sends
    bytes: a 409 while the job runs, a HEAD (a phone's link preview) or an error leaves it
    valid. A player that needs several ranges of a video uses the session token.
    """
    job = _result_job(job_id)
    store = current_app.extensions["ephemera.store"]
    with job.lock:
        output = job.outputs.get(name)
        if output is None:
            raise UserFacingError("output_not_found", "This job makes no such output.",
                                  status=404, remedy="Use an output 'url' from the job's status.")
        if job.state is JobState.FAILED and job.error is not None:
            raise job.error.detached()  # the kept error stays free of request frames
        if not output.ready:
            raise UserFacingError("not_ready", "This picture is not ready yet.", status=409,
                                  retry_after_s=1, remedy="Poll the job's status until this "
                                  "output's 'ready' is true.")
        total, media_type = output.nbytes, output.media_type
    span = _byte_range(total)
    start, stop = span if span is not None else (0, total)
    plaintext = None
    if request.method != "HEAD":  # Werkzeug never closes the body of a HEAD answer
        download = request.args.get("download")
        if download:  # outside job.lock: the manager's lock is always taken first
            _manager().spend_download(job, download)
        try:
            plaintext = store.get(job.id, name, job.key)
        except (KeyError, AttributeError, ValueError):  # released meanwhile (key gone too)
            raise UserFacingError("job_not_found", "There is no such job for this session. "
                                  "It may have expired or been deleted.", status=404,
                                  remedy="Start again with a new photo.") from None
    body: Any = SecureBody(plaintext, start=start, stop=stop) if plaintext is not None else b""
    response = Response(body, status=206 if span else 200, mimetype=media_type,
                        direct_passthrough=True)
    response.headers["Content-Length"] = str(stop - start)
    response.headers["Accept-Ranges"] = "bytes"
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
    response.headers["Content-Disposition"] = f"inline; filename=\"ephemera-{name}\""
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@api.post("/jobs/<job_id>/download-token")
def download_token(job_id: str) -> Any:
    """A one-time link to one output (``?output=NAME``; the first output by default)."""
    manager = _manager()
    job = manager.job_for_session(job_id, _bearer())
    with job.lock:
        names = list(job.outputs)
    name = request.args.get("output") or (names[0] if names else "")
    if name not in names:
        raise UserFacingError("output_not_found", "This job makes no such output.", status=404,
                              remedy="Name one of the outputs in the job's status.")
    token, expires_in = manager.issue_download_token(job)
    return jsonify({
        "download_token": token,
        "download_url": url_for("api.job_output", job_id=job.id, name=name, download=token),
        "output": name,
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


@api.delete("/session")
def delete_session() -> Any:
    """The kiosk's idle reset and a guest's "forget me": everything of the session, now."""
    released = _manager().release_session(_bearer())
    return jsonify({"deleted": True, **released})
