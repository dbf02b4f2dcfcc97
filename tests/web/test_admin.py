"""The operator's page: PIN, lock-out that doubles, expiring sessions, and what it shows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape

from appliance import audit
from appliance.config import load_config
from appliance.effects.registry import effects
from appliance.secure.pin import hash_pin
from appliance.web.admin_auth import FIRST_LOCK_S, MAX_WRONG, SESSION_S
from appliance.web.app import create_app, shutdown_app
from tests.helpers.images import astronaut_bgr, encode
from tests.helpers.service import CONSENT

PIN = "424242"
KIOSK = {"REMOTE_ADDR": "127.0.0.1"}
LAN = {"REMOTE_ADDR": "10.77.0.2", "ephemera.lan": True, "wsgi.url_scheme": "https"}
LAN_BASE = "https://10.77.0.1:8443"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def pin_hash() -> str:
    return hash_pin(PIN)


@pytest.fixture
def app(ram_dir: Path, pin_hash: str) -> Iterator[Flask]:
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(ram_dir / "store"),
                           "EPHEMERA_ADMIN_PIN_HASH": pin_hash,
                           "EPHEMERA_LAN_ENABLED": "true", "EPHEMERA_LAN_ADDRESS": "10.77.0.1",
                           "EPHEMERA_LAN_ALLOWED_CIDRS": "10.77.0.0/24"})
    application = create_app(cfg)
    application.extensions["ephemera.admin"].clock = clock = Clock()
    application.extensions["test.clock"] = clock
    yield application
    shutdown_app(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, pin: str, environ: dict[str, object] = KIOSK,
          base: str = "http://localhost") -> object:
    return client.post(f"{base}/admin/login", data={"pin": pin}, environ_base=environ,
                       headers={"Origin": base} if base != "http://localhost" else {})


def test_the_sign_in_page_runs_no_script_and_is_labelled(client: FlaskClient) -> None:
    page = client.get("/admin", environ_base=KIOSK)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script" not in html and " style=" not in html and "on" + "click" not in html
    assert re.search(r'<label for="pin">', html) and 'id="pin"' in html
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp


def test_wrong_pins_lock_out_and_the_pause_doubles(client: FlaskClient, app: Flask) -> None:
    clock = app.extensions["test.clock"]
    audit.clear()
    for attempt in range(1, MAX_WRONG):
        wrong = client.post("/admin/login", data={"pin": "000000"}, environ_base=KIOSK)
        assert wrong.status_code == 403, attempt
        assert wrong.get_json()["error"] == "wrong_pin"
    locked = client.post("/admin/login", data={"pin": "000000"}, environ_base=KIOSK)
    assert locked.status_code == 429 and locked.get_json()["error"] == "pin_locked"
    assert int(locked.headers["Retry-After"]) == int(FIRST_LOCK_S)
    # Even the right PIN waits out the lock, and nothing of a session is handed out.
    during = client.post("/admin/login", data={"pin": PIN}, environ_base=KIOSK)
    assert during.status_code == 429 and "Set-Cookie" not in during.headers
    clock.now += FIRST_LOCK_S + 1
    for _ in range(MAX_WRONG):
        last = client.post("/admin/login", data={"pin": "111111"}, environ_base=KIOSK)
    assert last.status_code == 429
    assert int(last.headers["Retry-After"]) == int(2 * FIRST_LOCK_S)  # doubled
    # Another address (the operator at the kiosk vs a guesser on the LAN) is not locked.
    other = client.post(f"{LAN_BASE}/admin/login", data={"pin": PIN}, environ_base=LAN,
                        headers={"Origin": LAN_BASE})
    assert other.status_code == 303
    admin_events = [e for e in audit.recent(1000) if e["event"].startswith("admin_")]
    names = [e["event"] for e in admin_events]
    assert names.count("admin_login_refused") >= 2 * MAX_WRONG and "admin_login" in names
    assert PIN not in str(admin_events) and "000000" not in str(admin_events)


def test_a_session_opens_with_the_pin_and_expires(client: FlaskClient, app: Flask) -> None:
    clock = app.extensions["test.clock"]
    assert client.get("/admin/status.json", environ_base=KIOSK).status_code == 401
    reply = login(client, PIN)
    assert reply.status_code == 303
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith("ephemera-admin=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert len(cookie.split(";")[0].split("=", 1)[1]) >= 43  # 256 bits
    status = client.get("/admin/status.json", environ_base=KIOSK)
    assert status.status_code == 200
    body = status.get_json()
    assert {"models", "store", "queue", "retention", "machine", "uptime_s"} <= set(body)
    assert all(len(m["onnx_sha256"]) == 64 for m in body["models"])
    page = client.get("/admin", environ_base=KIOSK).get_data(as_text=True)
    assert "Purge everything now" in page and body["models"][0]["onnx_sha256"] in page
    clock.now += SESSION_S + 1
    expired = client.get("/admin/status.json", environ_base=KIOSK)
    assert expired.status_code == 401
    assert expired.get_json()["error"] == "admin_login_required"
    assert client.post("/admin/purge", environ_base=KIOSK).status_code == 401


def test_on_the_lan_the_admin_cookie_is_secure(client: FlaskClient) -> None:
    reply = login(client, PIN, LAN, LAN_BASE)
    assert reply.status_code == 303
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith("__Host-ephemera-admin=") and "Secure" in cookie
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
    # Without the booth's Origin the same form is refused (CSRF).
    forged = client.post(f"{LAN_BASE}/admin/purge", environ_base=LAN,
                         headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and forged.get_json()["error"] == "csrf_refused"


def test_retention_is_set_within_the_cap_and_purge_empties_the_store(
        client: FlaskClient, app: Flask) -> None:
    login(client, PIN)
    cap = app.config["EPHEMERA"].retention.hard_cap_minutes
    too_long = client.post("/admin/retention", data={"minutes": str(cap + 1)},
                           environ_base=KIOSK)
    assert too_long.status_code == 400 and too_long.get_json()["error"] == "bad_retention"
    assert client.post("/admin/retention", data={"minutes": "30"},
                       environ_base=KIOSK).status_code == 303
    manager = app.extensions["ephemera.jobs"]
    assert manager.default_retention_minutes == 30
    assert client.post("/admin/purge", environ_base=KIOSK).status_code == 303
    stats = manager.stats()
    assert (stats["jobs"], stats["photos"]) == (0, 0)
    assert audit.recent(1)[0]["event"] == "store_purged"


def _self_test_rows(html: str) -> dict[str, list[str]]:
    rows = {}
    for effect in effects().values():
        title = re.escape(str(escape(effect.title)))
        row = re.search(rf"<th scope=\"row\">{title}</th>((?:<td>[^<]*</td>)+)</tr>", html)
        assert row is not None, effect.key
        rows[effect.key] = re.findall(r"<td>([^<]*)</td>", row.group(1))
    return rows


@pytest.mark.needs_models
def test_the_self_test_runs_a_job_through_every_effect(app: Flask,
                                                       client: FlaskClient) -> None:
    """End to end on a portrait drawn at run time: each effect's job is done with all its
    outputs, timed; afterwards nothing of it is left (no session, photo, job, stored byte or
    secure buffer), a guest's session is untouched, and the page shows no id or content."""
    from appliance.secure.buffers import REGISTRY

    manager = app.extensions["ephemera.jobs"]
    store = app.extensions["ephemera.store"]
    guest = client.post("/api/photos", data=encode(astronaut_bgr(), ".jpg"),
                        headers={"Content-Type": "image/jpeg", **CONSENT}, environ_base=KIOSK)
    assert guest.status_code == 201, guest.get_json()
    before_stats, before_usage = manager.stats(), store.usage()
    def guest_buffers() -> set[str]:  # the models' own (zeroised) buffers aside
        return {b.owner for b in REGISTRY.live() if not b.owner.startswith("backend:")}

    before_buffers = guest_buffers()
    login(client, PIN)
    page = client.post("/admin/self-test", environ_base=KIOSK)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for key, cells in _self_test_rows(html).items():
        result, how, photos_ms, job_ms, total_ms = cells
        assert result == "ok", (key, cells)
        outputs = len(effects()[key].outputs_with(effects()[key].validate_params({})))
        assert how == f"end to end, {outputs}/{outputs} outputs", (key, how)
        assert float(photos_ms) > 0 and 0 < float(job_ms) <= float(total_ms)
    assert manager.stats() == before_stats  # the guest's photo and session only
    assert store.usage() == before_usage
    assert guest_buffers() == before_buffers
    own = client.get(f"/api/photos/{guest.get_json()['photo_id']}", headers={
        "Authorization": f"Bearer {guest.get_json()['session_token']}"}, environ_base=KIOSK)
    assert own.status_code == 200
    assert not re.search(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", html)  # no job/photo id
    assert audit.recent(1)[0] == {**audit.recent(1)[0], "event": "self_test", "failed": 0}


@pytest.mark.needs_models
def test_the_self_test_falls_back_to_the_models_when_the_drawing_fails_a_gate(
        client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from appliance.web import self_test

    monkeypatch.setattr(self_test, "portrait", lambda faces: np.full((480, 640, 3), 128,
                                                                      np.uint8))
    login(client, PIN)
    html = client.post("/admin/self-test", environ_base=KIOSK).get_data(as_text=True)
    for key, cells in _self_test_rows(html).items():
        assert cells[0] == "ok", (key, cells)
        assert cells[1].startswith("models only (the drawn face failed the gate no_face)")
