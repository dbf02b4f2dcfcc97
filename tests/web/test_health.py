"""/healthz says "not ok" while the booth cannot take another guest's photo."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from appliance.config import load_config
from appliance.web.app import create_app, shutdown_app


def test_healthz_says_not_ok_while_the_store_is_full() -> None:
    store = Path("/dev/shm") / f"ephemera-health-{secrets.token_hex(6)}"
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(store / "store"),
                           "EPHEMERA_STORE_MAX_JOBS": "1"})
    app = create_app(cfg)
    try:
        client = app.test_client()
        assert client.get("/healthz").json == {"status": "ok"}
        app.extensions["ephemera.jobs"].create_job(None, "faces")
        reply = client.get("/healthz")
        assert reply.status_code == 503 and reply.json == {"status": "not ok"}
    finally:
        shutdown_app(app)
        shutil.rmtree(store, ignore_errors=True)
