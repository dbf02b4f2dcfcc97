"""Camera and printer endpoints for the kiosk and the admin page.

    GET    /api/camera/state                          source, state, last error (never pixels)
    GET    /api/camera/frame.jpg                      the latest preview frame (kiosk only)
    POST   /api/camera/capture                        a still -> a photo of the session, as an
                                                      upload would make it (201), or 503 retry
    GET    /api/printer/state                         ready, problems (paper, ink, jam, offline)
    POST   /api/jobs/<id>/outputs/<name>/print        print one output (kiosk only by default)

The camera endpoints answer loopback clients only: a live picture of the booth is for its own
screen, never for the LAN. A capture goes through the same ``receive_photo`` as an upload
(decode, metadata dropped, face gates, encrypted store), so the rest of the booth cannot tell
a captured photo from an uploaded one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from appliance.camera.base import camera_unavailable
from appliance.config import Config
from appliance.errors import UserFacingError
from appliance.web.access import request_session_token
from appliance.web.delivery import SecureBody

booth = Blueprint("booth", __name__, url_prefix="/api")


@booth.after_request
def _never_cached(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def install_booth_hardware(app: Flask, cfg: Config) -> None:
    """Start the configured camera and set up the printer; called by the app factory."""
    from appliance.camera.registry import make_source
    from appliance.printing.printer import BoothPrinter

    camera = make_source(cfg)
    camera.start()
    app.extensions["ephemera.camera"] = camera
    app.extensions["ephemera.printer"] = BoothPrinter(cfg)
    app.register_blueprint(booth)


def close_booth_hardware(app: Flask) -> None:
    camera = app.extensions.get("ephemera.camera")
    if camera is not None:
        camera.close()


def _from_kiosk() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _kiosk_only(what: str) -> None:
    if not _from_kiosk():
        raise UserFacingError("kiosk_only", f"{what} is only available on the booth's screen.",
                              status=403, remedy="Use the booth's touchscreen.")


# The bearer header (the kiosk) or, for a phone on the LAN, its session cookie.
_bearer = request_session_token


# -- camera -------------------------------------------------------------------------------------

@booth.get("/camera/state")
def camera_state() -> Any:
    return jsonify(current_app.extensions["ephemera.camera"].state())


@booth.get("/camera/frame.jpg")
def camera_frame() -> Any:
    _kiosk_only("The live picture")
    frame = current_app.extensions["ephemera.camera"].preview_jpeg("camera-preview-response")
    body = SecureBody(frame)
    response = Response(body, mimetype="image/jpeg", direct_passthrough=True)
    response.headers["Content-Length"] = str(len(body))
    return response


@booth.post("/camera/capture")
def camera_capture() -> Any:
    """Capture and keep the still as a photo of the session (consent as for an upload)."""
    from appliance.jobs.photos import FaceRule
    from appliance.media.encode import encode_image
    from appliance.web.api import _int_arg, _manager, _require_consent, _runner, photo_created

    _kiosk_only("The booth's camera")
    manager = _manager()
    _require_consent()
    effect_key = request.args.get("effect")
    effect = None
    if effect_key:
        from appliance.effects.registry import get_effect

        effect = get_effect(effect_key)
    rule = FaceRule.for_upload(effect, _int_arg("faces", None, 1, 2))
    camera = current_app.extensions["ephemera.camera"]
    if camera.state().get("server_side") is False:  # the page's own camera: upload instead
        from appliance.camera.browser import camera_in_browser

        raise camera_in_browser()
    if not camera.is_live:  # refused before a session or photo is made for it
        raise camera_unavailable(camera.state()["last_error"] or camera.state()["state"])
    photo, new_token = manager.create_photo(_bearer())
    try:
        still = camera.capture(photo.scratch_owner)
        if still.media_type == "image/jpeg":
            upload = still.buffer
        else:
            upload, view = encode_image(still.pixels(), "jpeg", photo.scratch_owner, 95)
            view.release()
            still.buffer.release()
        _runner().receive_photo(photo, upload, rule)
    except UserFacingError as exc:
        manager.fail_photo(photo, exc, new_session=new_token is not None)
        raise
    except Exception:
        manager.fail_photo(photo, UserFacingError("internal_error", "capture failed",
                                                  status=500),
                           new_session=new_token is not None)
        raise
    return photo_created(photo, new_token, source=camera.name)


# -- printer ------------------------------------------------------------------------------------

@booth.get("/printer/state")
def printer_state() -> Any:
    printer = current_app.extensions["ephemera.printer"]
    body = printer.state()
    token = _bearer()
    if token and printer.enabled:
        session = _session_id(token)
        if session is not None:
            body["prints_left"] = printer.prints_left(session)
    body["offered"] = bool(body["ready"]) and (_from_kiosk() or printer.cfg.printer.allow_phones)
    return jsonify(body)


def _session_id(token: str) -> str | None:
    import time

    manager = current_app.extensions["ephemera.jobs"]
    try:
        with manager._lock:
            return str(manager._session_or_raise(token, time.time()).id)
    except UserFacingError:
        return None


@booth.post("/jobs/<job_id>/outputs/<name>/print")
def print_output(job_id: str, name: str) -> Any:
    from appliance.media.decode import decode_image
    from appliance.secure.buffers import REGISTRY
    from appliance.web.api import _manager

    printer = current_app.extensions["ephemera.printer"]
    if not printer.enabled:
        raise UserFacingError("printing_off", "This booth does not print.", status=404,
                              remedy="Take the picture to your phone with the QR code.")
    if not printer.cfg.printer.allow_phones:
        _kiosk_only("Printing")
    job = _manager().job_for_session(job_id, _bearer())
    store = current_app.extensions["ephemera.store"]
    with job.lock:
        output = job.outputs.get(name)
        if output is None:
            raise UserFacingError("output_not_found", "This job makes no such output.",
                                  status=404, remedy="Use an output 'name' from the job's status.")
        if not output.ready:
            raise UserFacingError("not_ready", "This picture is not ready yet.", status=409,
                                  retry_after_s=1, remedy="Print once the output is ready.")
        if output.media_type != "image/jpeg":
            raise UserFacingError("not_printable", "Only pictures can be printed, not videos.",
                                  status=415, remedy="Print the poster picture instead.")
        plaintext = store.get(job.id, name, job.key, owner=f"{job.id}-print")
    owner = f"{job.id}-print"
    try:
        with plaintext.memoryview() as data:
            _decoded, bgr = decode_image(data, owner)
        result = printer.print_photo(bgr, job.session_id, owner)
    finally:
        REGISTRY.release_owner(owner)
    response = jsonify(result)
    response.status_code = 202
    return response
