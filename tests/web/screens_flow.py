"""The guest flows, step by step, as the browser tests drive them (kiosk and phone), and the
checks every flow ends with: the RAM store is empty, the memory scan finds nothing of what was
uploaded, and the deletion receipt verifies with the booth's key (and fails once changed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from playwright.sync_api import Error as PlaywrightError

from tests.helpers import service as svc
from tests.helpers.browser import Shots, wait_state
from tests.helpers.memscan import encoded_patterns, process_tree, scan

TIMEOUT_MS = 180_000  # the slowest effect on two CPU cores


class Uploads:
    """Every photo body the page sends (the test's canaries: what the booth must forget)."""

    def __init__(self, page: Any) -> None:
        self.bodies: list[bytes] = []
        page.on("request", self._seen)

    def _seen(self, request: Any) -> None:
        if request.method == "POST" and "/api/photos" in request.url:
            body = request.post_data_buffer
            if body:
                self.bodies.append(bytes(body))

    def patterns(self) -> dict[str, bytes]:
        """Windows of each uploaded file and rows of its decoded pixels (as the booth decodes
        them: OpenCV, BGR)."""
        found: dict[str, bytes] = {}
        for index, body in enumerate(self.bodies):
            for name, window in encoded_patterns(body, 1024, len(body)).items():
                if len(set(window)) >= 32:  # distinctive: not a run of one flat colour
                    found[f"upload{index}-{name}"] = window
            bgr = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            height, width = bgr.shape[:2]
            for row in (height // 3, height // 2, 2 * height // 3):
                start = width // 2 - 16
                pixels = bgr[row, start:start + 32].tobytes()
                if len(set(pixels)) >= 32:
                    found[f"upload{index}-bgr#{row}"] = pixels
        return found


def assert_forgotten(service: svc.Service, uploads: Uploads, extra: dict[str, bytes]
                     | None = None, *, flat_photos: bool = False) -> None:
    """Nothing of the guest is left: no file in the store, no trace in the service's memory.
    (``flat_photos``: a test pattern may hold nothing distinctive enough to look for.)"""
    assert service.store_files() == [], service.store_files()
    patterns = {**uploads.patterns(), **(extra or {})}
    if not patterns and flat_photos:
        return
    assert patterns, "the flow uploaded nothing to look for"
    result = scan(process_tree(service.pid), patterns)
    assert result.bytes_scanned > 10 << 20
    found = {name: n for name, n in result.counts.items() if n}
    assert not found, f"traces of the guest's photos in the service: {found}"


def wait_store_empty(service: svc.Service, timeout_s: float = 60) -> None:
    """A job still finishing when the guest wipes is released once its worker lets go: give it
    that long (bounded) before looking."""
    deadline = time.monotonic() + timeout_s
    while service.store_files() and time.monotonic() < deadline:
        time.sleep(0.2)


def receipt_of(page: Any) -> dict[str, Any]:
    page.wait_for_selector("#receipt-id[data-receipt]", timeout=30_000)  # filled in on answer
    raw = page.get_attribute("#receipt-id", "data-receipt")
    assert raw, "the receipt screen shows no signed receipt"
    receipt: dict[str, Any] = json.loads(raw)
    return receipt


def verify_with_cli(service: svc.Service, receipt: dict[str, Any], folder: Path) -> int:
    """``ephemera verify-receipt`` with this service's key: 0 valid, 1 not."""
    path = folder / "receipt.json"
    path.write_text(json.dumps(receipt))
    env = {**os.environ, "EPHEMERA_KIOSK_RECEIPT_KEY": str(service.store.parent /
                                                           "receipt-key.pem")}
    done = subprocess.run([sys.executable, "-m", "appliance", "verify-receipt", str(path)],
                          env=env, capture_output=True, text=True, timeout=60, cwd=svc.REPO)
    return done.returncode


def assert_receipt(service: svc.Service, receipt: dict[str, Any], folder: Path, *,
                   photos: int, results: int) -> None:
    payload = receipt["payload"]
    assert (payload["photos"], payload["results"], payload["keys"]) == (
        photos, results, photos + results), payload
    assert set(payload) == {"v", "receipt", "wiped_at", "photos", "results", "keys", "booth"}
    assert verify_with_cli(service, receipt, folder) == 0
    # One changed byte of the signed payload and it no longer verifies.
    changed = json.loads(json.dumps(receipt))
    changed["payload"]["receipt"] = ("X" if payload["receipt"][0] != "X" else "Y") + \
        payload["receipt"][1:]
    assert verify_with_cli(service, changed, folder) == 1


class HoldJobStatus:
    """Answer the page's job polls with "running, 42 %" until released: the progress screen
    stays on long enough to be photographed and checked (the real answers follow)."""

    def __init__(self, page: Any) -> None:
        self.holding = True
        self.page = page
        page.route("**/api/jobs/*", self._route)
        # Progress streams are refused while holding: the page falls back to the held polls.
        page.route("**/api/jobs/*/events", self._refuse_stream)

    def _refuse_stream(self, route: Any) -> None:
        if self.holding:
            route.abort()
        else:
            route.fallback()

    def _route(self, route: Any) -> None:
        request = route.request
        if not self.holding or request.method != "GET":
            route.fallback()
            return
        real = route.fetch()
        body = real.json()
        body.update(state="running", stage="rendering", progress=0.42)
        for output in body.get("outputs", []):
            output["ready"] = False
        try:
            route.fulfill(response=real, json=body)
        except PlaywrightError:
            if self.holding:
                raise
            # released while this poll was in flight: unroute has already let it through


    def release(self) -> None:
        self.holding = False
        self.page.unroute("**/api/jobs/*", self._route)
        self.page.unroute("**/api/jobs/*/events", self._refuse_stream)


def kiosk_to_effects(page: Any, shots: Shots | None = None) -> None:
    wait_state(page, "attract")
    if shots:
        shots.take("attract")
    page.click("[data-action=start]")
    wait_state(page, "consent")
    page.click("[data-action=agree]")  # not ticked yet: the friendly reminder
    page.wait_for_selector("#consent-error:not([hidden])")
    if shots:
        shots.take("consent-reminder")
    page.check("#consent-check")
    if shots:
        shots.take("consent")
    page.click("[data-action=agree]")
    wait_state(page, "effects")
    if shots:
        shots.take("effects")


def has_options(key: str) -> bool:
    """Does choosing this effect open the options screen (parameters, or a photo count)?"""
    from appliance.effects.registry import get_effect

    effect = get_effect(key)
    return bool(effect.params) or effect.photos[0] != effect.photos[1]


def choose_effect(page: Any, key: str, shots: Shots | None = None) -> None:
    """Press the effect; on its options screen, the defaults as they are: "Continue"."""
    page.click(f"[data-effect={key}]")
    if not has_options(key):
        return
    wait_state(page, "options")
    page.wait_for_selector("#option-fields .option")
    if shots:
        shots.take("options")
    page.click("#screen-options [data-action=options-continue]")


def take_photo(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('preview').videoWidth > 0",
                           timeout=30_000)
    page.click("#screen-capture [data-action=shoot]")
    page.wait_for_selector("#review-actions:not([hidden])", timeout=15_000)


def kiosk_capture(page: Any, shots_needed: int, shots: Shots | None = None) -> None:
    for shot in range(1, shots_needed + 1):
        wait_state(page, "capture")
        page.wait_for_function("() => document.getElementById('preview').videoWidth > 0",
                               timeout=30_000)
        if shots and shot == 1:
            page.wait_for_timeout(300)
            shots.take("capture")
        page.click("#screen-capture [data-action=shoot]")
        if shots and shot == 1:
            page.wait_for_selector("#countdown:not([hidden])")
            shots.take("countdown")
        page.wait_for_selector("#review-actions:not([hidden])", timeout=15_000)
        if shots and shot == 1:
            shots.take("review")
        page.click("[data-action=keep]")
        if shot < shots_needed:
            page.wait_for_function(
                "(n) => document.getElementById('capture-title').textContent.includes(String(n))",
                arg=shot + 1, timeout=60_000)
            page.wait_for_selector("#review-actions", state="hidden")


def wait_result(page: Any) -> None:
    wait_state(page, "result", TIMEOUT_MS)
    page.wait_for_selector("#carousel .media", timeout=TIMEOUT_MS)


def media_shown(page: Any) -> dict[str, Any]:
    """What the first output on the result screen is, once it has loaded (and, a video,
    played)."""
    page.wait_for_function(
        "() => { const m = document.querySelector('#carousel .media'); if (!m) return false; "
        "return m.tagName === 'IMG' ? m.complete && m.naturalWidth > 0 : "
        "m.readyState >= 2 && m.currentTime > 0; }", timeout=60_000)
    shown: dict[str, Any] = page.evaluate(
        "() => { const m = document.querySelector('#carousel .media'); return {tag: m.tagName, "
        "width: m.naturalWidth || m.videoWidth, time: m.currentTime || 0}; }")
    return shown


def all_outputs_ready(page: Any, count: int) -> None:
    page.wait_for_function(
        "(n) => document.querySelectorAll('#carousel .media').length === n", arg=count,
        timeout=TIMEOUT_MS)
