"""The camera and printer endpoints as the kiosk and the admin page will call them."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from appliance.config import load_config
from appliance.printing.render import CARD_PIXELS
from appliance.web.app import create_app, shutdown_app
from tests.helpers import ipp_printer
from tests.helpers.images import astronaut_bgr, encode
from tests.web.test_api import CONSENT, auth, error, start, upload, wait

# A guest's phone on the booth's LAN, as the TLS listener hands its requests to the app: it
# passes the client guard and the access policy; the kiosk-only endpoints must still refuse.
LAN = {"REMOTE_ADDR": "192.168.4.20", "ephemera.lan": True, "wsgi.url_scheme": "https"}
LAN_BASE = "https://192.168.4.1:8443"
WITH_LAN = {"EPHEMERA_LAN_ENABLED": "1", "EPHEMERA_LAN_ADDRESS": "192.168.4.1",
            "EPHEMERA_LAN_PORT": "8443", "EPHEMERA_LAN_ALLOWED_CIDRS": "192.168.4.0/24",
            "EPHEMERA_LAN_TLS_CERT": "unused.pem", "EPHEMERA_LAN_TLS_KEY": "unused.key"}


def from_phone(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """A request from a phone on the LAN, with its own page's Origin."""
    headers = {"Origin": LAN_BASE, **kwargs.pop("headers", {})}
    return client.open(LAN_BASE + path, method=method, environ_base=LAN, headers=headers,
                       **kwargs)


@pytest.fixture
def make_app() -> Iterator[Any]:
    made: list[tuple[Flask, Path]] = []

    def build(**env: str) -> Flask:
        store = Path("/dev/shm") / f"ephemera-booth-{secrets.token_hex(6)}"
        app = create_app(load_config(env={"EPHEMERA_STORE_PATH": str(store / "store"), **env}))
        made.append((app, store))
        return app

    yield build
    for app, store in made:
        shutdown_app(app)
        shutil.rmtree(store, ignore_errors=True)


def test_browser_camera_state_and_refusals(make_app: Any) -> None:
    client = make_app(**WITH_LAN).test_client()
    state = client.get("/api/camera/state")
    assert state.status_code == 200 and state.headers["Cache-Control"] == "no-store"
    assert state.json["source"] == "browser" and state.json["ready"] is True
    assert error(client.post("/api/camera/capture", headers=CONSENT)) == (
        409, "camera_in_browser")
    assert error(client.get("/api/camera/frame.jpg")) == (409, "camera_in_browser")
    assert error(from_phone(client, "GET", "/api/camera/frame.jpg")) == (403, "kiosk_only")


def test_printing_off_by_default(make_app: Any) -> None:
    client = make_app().test_client()
    assert client.get("/api/printer/state").json["state"] == "disabled"
    assert error(client.post("/api/jobs/x/outputs/y.jpg/print")) == (404, "printing_off")


class NamespacedClient:
    """Runs the real IPP client's calls on the thread inside the printer's namespace."""

    def __init__(self, printer: ipp_printer.Printer, client: Any) -> None:
        self.printer, self.client = printer, client

    def printer_attributes(self) -> Any:
        return self.printer.run(self.client.printer_attributes)

    def print_job(self, *args: Any) -> Any:
        return self.printer.run(self.client.print_job, *args)


@pytest.mark.needs_models
@pytest.mark.skipif(not ipp_printer.available(), reason="needs root and ippeveprinter")
def test_print_a_result_from_the_kiosk(make_app: Any) -> None:
    with ipp_printer.ipp_printer() as printer:
        app = make_app(EPHEMERA_PRINTER_ENABLED="1", EPHEMERA_PRINTER_URI=printer.uri,
                       EPHEMERA_PRINTER_PER_SESSION_LIMIT="1", EPHEMERA_PRINTER_TIMEOUT_S="20",
                       **WITH_LAN)
        booth = app.extensions["ephemera.printer"]
        booth.client = NamespacedClient(printer, booth.client)
        client = app.test_client()
        photo = upload(client, encode(astronaut_bgr(), ".jpg"))
        assert photo.status_code == 201, photo.json
        token = photo.json["session_token"]
        job = start(client, token, {"effect": "faces", "photos": [photo.json["photo_id"]]})
        assert job.status_code == 202, job.json
        status = wait(client, f"/api/jobs/{job.json['job_id']}", token)
        name = next(o["name"] for o in status["outputs"] if o["media_type"] == "image/jpeg")
        url = f"/api/jobs/{job.json['job_id']}/outputs/{name}/print"

        state = client.get("/api/printer/state", headers=auth(token)).json
        assert state["ready"] and state["offered"] and state["prints_left"] == 1
        assert from_phone(client, "GET", "/api/printer/state").json["offered"] is False
        assert error(from_phone(client, "POST", url, headers=auth(token))) == (
            403, "kiosk_only")
        assert error(client.post(url)) == (401, "token_required")

        printed = client.post(url, headers=auth(token))
        assert printed.status_code == 202, printed.json
        assert printed.json["prints_left"] == 0
        assert error(client.post(url, headers=auth(token))) == (429, "print_limit")
        deadline = time.monotonic() + 20
        arrived: list[Path] = []
        while time.monotonic() < deadline and not arrived:
            arrived = list(printer.spool.rglob("*.jpg"))
            time.sleep(0.2)
        assert arrived and Image.open(arrived[0]).size == CARD_PIXELS

        printer.stop_printer()
        time.sleep(0.5)
        gone = client.get("/api/printer/state").json
        deadline = time.monotonic() + 5
        while gone["state"] != "offline" and time.monotonic() < deadline:
            time.sleep(0.5)
            gone = client.get("/api/printer/state").json
        assert gone["state"] == "offline" and gone["offered"] is False
        assert gone["problems"] == ["offline"]


@pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="GStreamer is not installed")
def test_admin_page_shows_camera_and_printer_state(make_app: Any) -> None:
    """A camera that cannot open and a printer nobody answers: the operator reads both, with
    the camera's last error and the printer's problem, on the page and in status.json."""
    from appliance.secure.pin import hash_pin

    app = make_app(EPHEMERA_CAMERA_SOURCE="gstreamer",
                   EPHEMERA_CAMERA_PIPELINE="v4l2src device=/dev/ephemera-no-camera",
                   EPHEMERA_CAMERA_RETRY_MAX_S="1", EPHEMERA_PRINTER_ENABLED="1",
                   EPHEMERA_PRINTER_URI="ipp://127.0.0.1:9/ipp/print",
                   EPHEMERA_PRINTER_TIMEOUT_S="2", EPHEMERA_ADMIN_PIN_HASH=hash_pin("424242"))
    camera = app.extensions["ephemera.camera"]
    deadline = time.monotonic() + 20
    while not camera.state()["last_error"] and time.monotonic() < deadline:
        time.sleep(0.1)
    client = app.test_client()
    assert client.post("/admin/login", data={"pin": "424242"}).status_code in (200, 302, 303)
    status = client.get("/admin/status.json").json
    assert status["camera"]["source"] == "gstreamer"
    assert status["camera"]["state"] == "reconnecting"
    assert "/dev/ephemera-no-camera" in status["camera"]["last_error"]
    assert status["printer"]["ready"] is False and status["printer"]["problems"] == ["offline"]
    page = client.get("/admin").get_data(as_text=True)
    assert "Camera and printer" in page and "/dev/ephemera-no-camera" in page
    assert "not ready" in page and "offline" in page
