"""The Flask application factory.

Why a factory: tests, the gunicorn server and the CLI each build an app from one validated
``Config`` with no module-level state, so two apps (kiosk and LAN) never share anything by
accident.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template

from appliance import __version__
from appliance.config import Config


def create_app(cfg: Config) -> Flask:
    app = Flask(__name__)
    app.config["EPHEMERA"] = cfg
    # Needed for request.stream.readinto under gunicorn, and a first bound on upload size.
    app.config["MAX_CONTENT_LENGTH"] = 40 << 20

    @app.get("/")
    def kiosk() -> str:
        return render_template("index.html", version=__version__)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok", version=__version__, mode=cfg.mode)

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Any:
        return jsonify(error="not_found", message="There is nothing at this address."), 404

    return app
