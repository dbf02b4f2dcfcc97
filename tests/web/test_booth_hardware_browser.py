"""The kiosk with the booth's own camera and printer, end to end in Debian's Chromium.

The service is the real one (gunicorn) with ``camera.source = "gstreamer"``: the same code path
as a CSI or USB camera, only the source fragment of the pipeline differs. The fragment shows a
real face (scikit-image's astronaut through ``imagefreeze``): ``videotestsrc``'s bars hold no
face, so the face gate would refuse every capture. The printer is a real ``ippeveprinter`` in a
network namespace (output on tmpfs), reached through a loopback port; each test gets a fresh
printer and a fresh page, so one failure does not carry into the next test.

The page never asks for the browser's camera (getUserMedia is counted): the live picture is
``/api/camera/frame.jpg`` pulled again and again, the still ``POST /api/camera/capture``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from skimage import data as skdata

from appliance.printing.render import CARD_PIXELS
from tests.helpers import ipp_printer
from tests.helpers import service as svc
from tests.helpers.browser import Shots, assert_accessible, launch, wait_state, watch_errors
from tests.helpers.ipp_forward import Forwarder, forwarder
from tests.web.screens_flow import TIMEOUT_MS, choose_effect, kiosk_to_effects

pytestmark = [pytest.mark.slow, pytest.mark.needs_models, pytest.mark.browser,
              pytest.mark.skipif(shutil.which("gst-launch-1.0") is None,
                                 reason="GStreamer is not installed (make system-deps)"),
              pytest.mark.skipif(not ipp_printer.available(),
                                 reason="needs root, ippeveprinter (cups-ipp-utils), avahi")]
sync_api = pytest.importorskip("playwright.sync_api")

ASTRONAUT = Path(skdata.__file__).parent / "astronaut.png"
# Counts any use of the browser's own camera: with a camera on the server there must be none.
NO_BROWSER_CAMERA = """
window.__getUserMedia = 0;
if (navigator.mediaDevices) {
  navigator.mediaDevices.getUserMedia = () => {
    window.__getUserMedia += 1;
    return Promise.reject(new DOMException("not on this booth", "NotAllowedError"));
  };
}
"""
LIVE = ("() => { const img = document.getElementById('live'); return !img.hidden && "
        "img.complete && img.naturalWidth > 0 && "
        "document.getElementById('camera-status').hidden; }")
RECONNECTING = ("() => !document.getElementById('camera-status').hidden && "
                "document.getElementById('live').hidden")


@pytest.fixture(scope="module")
def picture() -> Iterator[Path]:
    """The camera's scene, under a name of this module's own (it finds the pipeline's pid)."""
    path = Path("/dev/shm") / f"ephemera-scene-{secrets.token_hex(4)}.png"
    shutil.copyfile(ASTRONAUT, path)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def port() -> Iterator[Forwarder]:
    with forwarder() as forward:
        yield forward


@pytest.fixture(scope="module")
def booth(tmp_path_factory: pytest.TempPathFactory, picture: Path,
          port: Forwarder) -> Iterator[svc.Service]:
    pipeline = (f"filesrc location={picture} ! pngdec ! imagefreeze is-live=true "
                "! video/x-raw,framerate=10/1")
    env = {"EPHEMERA_CAMERA_SOURCE": "gstreamer", "EPHEMERA_CAMERA_PIPELINE": pipeline,
           "EPHEMERA_CAMERA_STILL_SIZE": "512,512", "EPHEMERA_CAMERA_PREVIEW_SIZE": "256,256",
           "EPHEMERA_CAMERA_CAPTURE_TIMEOUT_S": "3", "EPHEMERA_CAMERA_RETRY_MAX_S": "2",
           "EPHEMERA_PRINTER_ENABLED": "1", "EPHEMERA_PRINTER_URI": port.uri,
           "EPHEMERA_PRINTER_PER_SESSION_LIMIT": "2", "EPHEMERA_PRINTER_TIMEOUT_S": "20"}
    with svc.running(tmp_path_factory.mktemp("hardware-booth"), env=env,
                     ready_timeout=180) as service:
        yield service


@pytest.fixture
def printer(port: Forwarder) -> Iterator[ipp_printer.Printer]:
    """A fresh printer behind the service's printer port for each test."""
    with ipp_printer.ipp_printer() as fresh:
        port.printer = fresh
        try:
            yield fresh
        finally:
            port.printer = None
            port.drop_connections()


@pytest.fixture(scope="module")
def browser(booth: svc.Service) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright, None)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def kiosk(booth: svc.Service, browser: Any) -> Iterator[Any]:
    """A fresh page; afterwards the camera is live again and the store is empty, whatever the
    test did (a later test must not start from a broken state)."""
    context = browser.new_context(viewport={"width": 1024, "height": 600})
    context.add_init_script(NO_BROWSER_CAMERA)
    page = context.new_page()
    watch_errors(page)
    frames: list[str] = []
    page.on("request", lambda r: frames.append(r.url) if "/api/camera/frame.jpg" in r.url
            else None)
    page.frames_pulled = frames
    try:
        yield page
    finally:
        context.close()
        wait_camera_live(booth)
        deadline = time.monotonic() + 30
        while booth.store_files() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert booth.store_files() == [], "a test left a photo or result in the store"


def wait_camera_live(service: svc.Service, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = service.get("/api/camera/state").json()
    while state["state"] != "live" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = service.get("/api/camera/state").json()
    assert state["state"] == "live", state
    return state


def pipeline_pid(picture: Path) -> int:
    """The gst-launch-1.0 process the service runs for this module's camera."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if cmdline[0].endswith(b"gst-launch-1.0") and str(picture).encode() in b" ".join(
                    cmdline):
                return int(entry.name)
    raise AssertionError("no pipeline process found")


def to_capture(page: Any, booth: svc.Service, lang: str = "en") -> None:
    wait_camera_live(booth)
    page.goto(f"http://127.0.0.1:{booth.port}/?lang={lang}")
    kiosk_to_effects(page)
    choose_effect(page, "faces")
    wait_state(page, "capture")
    page.wait_for_function(LIVE, timeout=60_000)


def printed_files(printer: ipp_printer.Printer, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    files: list[Path] = []
    while time.monotonic() < deadline and not files:
        files = [p for p in printer.spool.rglob("*") if p.is_file()
                 and p.suffix in (".jpg", ".jpeg")]
        time.sleep(0.2)
    return files


def test_capture_with_the_booth_camera_then_print_the_result(
        booth: svc.Service, kiosk: Any, printer: ipp_printer.Printer, picture: Path) -> None:
    """The live picture is pulled from the server, the still taken there, the effect runs, the
    result screen offers "Print" (two prints for the session), and the print reaches the
    printer at 10x15 cm, 300 dpi."""
    page = kiosk
    shots = Shots(page, "kiosk-1024x600", "en-hardware")
    to_capture(page, booth)
    assert page.is_hidden("#preview")
    pulled = len(page.frames_pulled)
    page.wait_for_timeout(1500)
    assert len(page.frames_pulled) - pulled >= 5, "the live picture is not refreshed"
    shots.take("capture-booth-camera")
    page.click("#screen-capture [data-action=shoot]")
    page.wait_for_selector("#review-actions:not([hidden])", timeout=60_000)
    assert page.evaluate("() => document.getElementById('still').naturalWidth") > 0
    shots.take("review-booth-camera")
    page.click("[data-action=keep]")
    wait_state(page, "result", TIMEOUT_MS)
    page.wait_for_selector("#carousel .media", timeout=TIMEOUT_MS)
    page.wait_for_selector("#print-button:not([hidden])", timeout=30_000)
    assert "2" in page.inner_text("#prints-left")
    shots.take("result-print-offered")

    page.click("#print-button")
    page.wait_for_function("() => document.getElementById('print-status').textContent"
                           ".includes('on its way')", timeout=60_000)
    assert "1" in page.inner_text("#prints-left")
    arrived = printed_files(printer)
    assert arrived, list(printer.spool.rglob("*"))
    document = Image.open(arrived[0])
    assert document.format == "JPEG" and document.size == CARD_PIXELS
    assert document.info["dpi"] == (300, 300)
    shots.take("result-printed")
    assert page.evaluate("() => window.__getUserMedia") == 0
    page.click("[data-action=done]")
    wait_state(page, "receipt")
    assert page.errors == []


def test_camera_killed_mid_preview_shows_reconnecting_then_recovers(
        booth: svc.Service, kiosk: Any, picture: Path) -> None:
    page = kiosk
    shots = Shots(page, "kiosk-1024x600", "ar-hardware")
    to_capture(page, booth, "ar")
    os.kill(pipeline_pid(picture), signal.SIGKILL)
    page.wait_for_function(RECONNECTING, timeout=30_000)
    # Not a frozen frame: the picture is hidden, the words say why, the button waits.
    assert page.is_disabled("#screen-capture [data-action=shoot]")
    assert page.inner_text("#camera-status").strip()
    shots.take("capture-reconnecting")
    page.wait_for_function(LIVE, timeout=60_000)
    assert page.is_enabled("#screen-capture [data-action=shoot]")
    state = booth.get("/api/camera/state").json()
    assert "killed by signal 9" in (state["last_error"] or ""), state
    page.click("#screen-capture [data-action=back]")
    wait_state(page, "effects")
    assert page.evaluate("() => window.__getUserMedia") == 0
    assert page.errors == []


def test_a_failed_capture_offers_a_retry_that_works(
        booth: svc.Service, kiosk: Any, picture: Path) -> None:
    """The camera freezes during the countdown (SIGSTOP): the capture answers 503 and the
    guest gets "Try again", which works once the camera is back."""
    page = kiosk
    shots = Shots(page, "kiosk-1024x600", "en-hardware")
    to_capture(page, booth)
    frozen = pipeline_pid(picture)
    page.click("#screen-capture [data-action=shoot]")
    os.kill(frozen, signal.SIGSTOP)
    try:
        page.wait_for_selector("#capture-retry:not([hidden])", timeout=60_000)
        assert page.is_visible("#capture-error")
        assert page.is_hidden("#screen-capture [data-action=shoot]")
        shots.take("capture-retry")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen, signal.SIGCONT)
    page.wait_for_function(LIVE, timeout=60_000)
    page.wait_for_function("() => !document.getElementById('capture-retry').disabled")
    page.click("#capture-retry")
    page.wait_for_selector("#review-actions:not([hidden])", timeout=60_000)
    page.click("[data-action=retake]")  # the still is deleted on the server at once
    page.wait_for_selector("#review-actions", state="hidden")
    page.click("#screen-capture [data-action=back]")
    wait_state(page, "effects")
    assert page.errors == []


def test_printer_out_of_paper_hides_print_and_says_so(
        booth: svc.Service, kiosk: Any, printer: ipp_printer.Printer) -> None:
    page = kiosk
    shots = Shots(page, "kiosk-1024x600", "de-hardware")
    to_capture(page, booth, "de")
    page.click("#screen-capture [data-action=shoot]")
    page.wait_for_selector("#review-actions:not([hidden])", timeout=60_000)
    page.click("[data-action=keep]")
    wait_state(page, "result", TIMEOUT_MS)
    page.wait_for_selector("#carousel .media", timeout=TIMEOUT_MS)
    page.wait_for_selector("#print-button:not([hidden])", timeout=30_000)
    printer.run(set_media_empty, printer.uri)
    page.wait_for_selector("#print-button", state="hidden", timeout=30_000)
    page.wait_for_function("() => document.getElementById('print-status').textContent"
                           ".includes('Papier')", timeout=30_000)
    shots.take("result-out-of-paper")
    assert_accessible(page, "result, printer out of paper")
    page.click("#screen-result [data-action=delete]")
    wait_state(page, "receipt")
    assert printed_files(printer, timeout=1) == []
    assert page.errors == []


def set_media_empty(printer_uri: str) -> None:
    """ippeveprinter's own web form: no media loaded in the main tray."""
    import urllib.parse
    import urllib.request

    base = printer_uri.replace("ipp://", "http://").rsplit("/ipp/print", 1)[0]
    query = urllib.parse.urlencode({"size1": "", "type1": "", "level1": "0",
                                    "size3": "", "type3": "", "level3": "0"})
    urllib.request.urlopen(f"{base}/media?{query}", timeout=10).read()
