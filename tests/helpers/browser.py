"""Drive the guest screens in Debian's Chromium (Playwright), never a downloaded browser.

* ``fake_camera``: a .y4m clip made from a real face photo (scikit-image's astronaut) that
  Chromium plays as its camera (``--use-file-for-fake-video-capture``); without a file Chromium's
  own fake camera shows a green test pattern, which holds no face.
* ``axe_violations``: axe-core from the copy vendored under tests/vendor (never a CDN), run on
  the page as it is, WCAG 2.0/2.1/2.2 A and AA rules.
* ``Shots``: screenshots of every screen, per viewport and language, in a tmpfs folder
  (``$EPHEMERA_SCREENSHOTS``, default /dev/shm/ephemera-screens) for a person to look at.
* ``decode_qr``: read a QR code from a screenshot with OpenCV's detector.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from tests.helpers.images import astronaut_bgr

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SCREENSHOTS = Path(os.environ.get("EPHEMERA_SCREENSHOTS", "/dev/shm/ephemera-screens"))

VIEWPORTS: dict[str, dict[str, Any]] = {
    "kiosk-1024x600": {"viewport": {"width": 1024, "height": 600}},
    "kiosk-1920x1080": {"viewport": {"width": 1920, "height": 1080}},
    "kiosk-portrait-1080x1920": {"viewport": {"width": 1080, "height": 1920},
                                 "device_scale_factor": 0.5},
    "phone-390x844": {"viewport": {"width": 390, "height": 844}, "is_mobile": True,
                      "has_touch": True, "device_scale_factor": 2},
}
PHONE = VIEWPORTS["phone-390x844"]


def write_y4m(path: Path, bgr: npt.NDArray[np.uint8], width: int = 640,
              height: int = 480) -> Path:
    """One still frame as a YUV4MPEG2 (4:2:0) clip: the photo centred on a grey backdrop."""
    frame = np.full((height, width, 3), 128, np.uint8)
    side = min(width, height)
    photo = cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = (width - side) // 2, (height - side) // 2
    frame[y0:y0 + side, x0:x0 + side] = photo
    i420 = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420)
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + i420.tobytes())
    return path


def fake_camera(folder: Path) -> Path:
    return write_y4m(folder / "astronaut.y4m", astronaut_bgr())


def launch_args(y4m: Path | None) -> list[str]:
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    if y4m is not None:
        args.append(f"--use-file-for-fake-video-capture={y4m}")
    return args


def launch(playwright: Any, y4m: Path | None) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=launch_args(y4m))


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page now (injected through the debugger protocol, which
    the page's Content-Security-Policy does not govern; the page's own rules stay on)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate(
        "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', values: "
        "tags}, resultTypes: ['violations']}); return r.violations.map(v => ({id: v.id, "
        "impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ') + ': ' + "
        "n.failureSummary)})); }", AXE_TAGS)
    return list(result)


def assert_accessible(page: Any, where: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core on {where}:\n" + json.dumps(violations, indent=1)


class Shots:
    """Screenshots named <viewport>/<language>-<screen>.png, plus an axe-core check of each."""

    def __init__(self, page: Any, viewport: str, lang: str, *, axe: bool = True) -> None:
        self.page, self.viewport, self.lang, self.axe = page, viewport, lang, axe
        self.taken: list[Path] = []

    def take(self, screen: str) -> Path:
        folder = SCREENSHOTS / self.viewport
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.lang}-{screen}.png"
        self.page.wait_for_timeout(150)  # let layout settle (no animation runs long)
        self.page.screenshot(path=str(path))
        self.taken.append(path)
        if self.axe:
            assert_accessible(self.page, f"{self.viewport} {self.lang} {screen}")
        return path


def decode_qr(png: bytes) -> str:
    """The text of the QR code in a PNG screenshot ('' if none is found)."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    detector = cv2.QRCodeDetector()
    for scale in (1, 2, 4):  # a small code on a 1024x600 screen: a few pixels per module
        big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        big = cv2.copyMakeBorder(big, 32, 32, 32, 32, cv2.BORDER_CONSTANT, value=255)
        big = cv2.threshold(big, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]
        text, _points, _ = detector.detectAndDecode(big)
        if text:
            return str(text)
    return ""


def wait_state(page: Any, state: str, timeout: float = 60_000) -> None:
    """Wait until the state machine shows ``state`` (no string eval: the page's CSP forbids it)."""
    page.wait_for_function("(s) => document.body.dataset.state === s", arg=state,
                           timeout=timeout)


@contextmanager
def console_errors(page: Any) -> Iterator[list[str]]:
    """Collect the page's uncaught errors (a screen error is a test failure)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield errors


def watch_errors(page: Any) -> Any:
    """``page.errors``: the page's uncaught errors and its failsafe's console lines, collected
    from now on (a test asserts there are none)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.text.startswith("failsafe") else None)
    page.errors = errors
    return page
