"""The Flask application factory.

Why a factory: tests, the gunicorn server and the CLI each build an app from one validated
``Config`` with no module-level state, so two apps (kiosk and LAN) never share anything by
accident. The factory wires the job machinery (RAM store, models, face pipeline, job manager)
into ``app.extensions`` and maps every ``UserFacingError`` to a JSON answer.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from appliance.config import Config
from appliance.errors import UserFacingError
from appliance.secure.buffers import use_memfd_secret
from appliance.web.access import install_access_policy
from appliance.web.admin import install_admin
from appliance.web.client_guard import install_client_guard
from appliance.web.screens import install_screens

# The largest body Flask will hand us; the API refuses anything over the decoder's byte limit
# (smaller) itself, before reading. Needed too for request.stream.readinto under gunicorn.
MAX_CONTENT_LENGTH = 40 << 20

# Sent with every answer (pages, API, errors): nothing of the booth may be framed, sniffed,
# cached, leak a URL with a token through Referer, or reach a camera or microphone except
# from the booth's own pages. Screens load their scripts and styles from the booth only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=(), usb=(), "
                          "interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def error_response(error: UserFacingError) -> Any:
    g.ephemera_error_code = error.code  # the access policy counts failed token attempts
    response = jsonify(error.to_json())
    response.status_code = error.status
    response.headers["Cache-Control"] = "no-store"
    if error.retry_after_s is not None:
        response.headers["Retry-After"] = str(error.retry_after_s)
    for name, value in getattr(error, "headers", {}).items():
        response.headers[name] = value
    if request.method == "POST":
        # The body may be unread (refused on its headers): close rather than drain it.
        response.headers["Connection"] = "close"
    return response


def _install_jobs(app: Flask, cfg: Config) -> None:
    from appliance.jobs.effect_jobs import EffectJobRunner
    from appliance.jobs.manager import JobManager
    from appliance.models.loader import ModelSet
    from appliance.secure.store import RamStore
    from appliance.vision.pipeline import FacePipeline
    from appliance.web.api import api
    from appliance.web.upload_slots import UploadSlots

    store = RamStore.from_config(cfg)
    models = ModelSet(cfg)
    app.extensions["ephemera.store"] = store
    app.extensions["ephemera.models"] = models
    manager = JobManager(cfg, store, models)
    app.extensions["ephemera.jobs"] = manager
    app.extensions["ephemera.upload_slots"] = UploadSlots()
    app.extensions["ephemera.work"] = EffectJobRunner(FacePipeline(models), store, manager)
    app.register_blueprint(api)
    from appliance.web.progress_stream import install_progress_streams

    install_progress_streams(app, manager)


def create_app(cfg: Config, *, jobs: bool = True) -> Flask:
    """Build the app; ``jobs=False`` serves the pages only (no store, no models)."""
    use_memfd_secret(cfg.secure.memfd_secret)
    app = Flask(__name__)
    app.config["EPHEMERA"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    install_client_guard(app, cfg)
    install_access_policy(app, cfg)
    if jobs:
        _install_jobs(app, cfg)
        from appliance.web.booth_api import install_booth_hardware

        install_booth_hardware(app, cfg)
    install_admin(app, cfg)
    install_screens(app, cfg)

    @app.get("/healthz")
    def healthz() -> Any:
        """"ok" or "not ok", nothing more: any client may ask, and the version and mode would
        tell an attacker what to try. Details belong on the operator's pages. "not ok" (503)
        while the booth cannot take another guest's photo (the store is full)."""
        manager = app.extensions.get("ephemera.jobs")
        if manager is not None and manager.is_full():
            response = jsonify(status="not ok")
            response.status_code = 503
            return response
        return jsonify(status="ok")

    @app.after_request
    def security_headers(response: Any) -> Any:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(UserFacingError)
    def user_facing(error: UserFacingError) -> Any:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed",
                413: "too_many_bytes"}.get(error.code or 500, "bad_request")
        messages = {"not_found": "There is nothing at this address.",
                    "too_many_bytes": "The upload is too large."}
        remedies = {"not_found": "Open the booth's page from its screen or QR code.",
                    "method_not_allowed": "Use the booth's own page.",
                    "too_many_bytes": "Send a smaller photo."}
        return error_response(UserFacingError(
            code, messages.get(code, error.description or code), status=error.code or 400,
            remedy=remedies.get(code, "Use the booth's own page.")))

    return app


def shutdown_app(app: Flask) -> None:
    """Release every job and close the models: the worker's exit path (SIGTERM included)."""
    from appliance.web.booth_api import close_booth_hardware

    close_booth_hardware(app)
    hub = app.extensions.get("ephemera.progress")
    if hub is not None:
        hub.close()
    manager = app.extensions.get("ephemera.jobs")
    if manager is not None:
        manager.close()
    models = app.extensions.get("ephemera.models")
    if models is not None:
        models.close()
