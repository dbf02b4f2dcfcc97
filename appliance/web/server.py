"""Run the Flask app under gunicorn.

Why gunicorn (and never waitress or the Werkzeug dev server): gunicorn does not spool request
bodies to temporary files and speaks TLS itself. One worker process owns the models and the
RAM store's keys; threads serve concurrent requests.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from appliance.config import Config
from appliance.web.app import create_app


class EphemeraServer(BaseApplication):
    """A gunicorn application configured from our Config, not from gunicorn's CLI."""

    def __init__(self, cfg: Config, options: dict[str, Any]) -> None:
        self.cfg_ephemera = cfg
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.cfg_ephemera)


def gunicorn_options(cfg: Config) -> dict[str, Any]:
    return {
        "bind": [f"127.0.0.1:{cfg.kiosk.port}"],
        "workers": 1,
        "threads": 4,
        "worker_class": "gthread",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "timeout": 120,
        "graceful_timeout": 10,
    }


def serve(cfg: Config) -> int:
    EphemeraServer(cfg, gunicorn_options(cfg)).run()
    return 0
