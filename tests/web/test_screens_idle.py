"""The kiosk's idle wipe: left alone on a screen that holds a guest's pictures, the kiosk
shows a visible, announced countdown, then wipes the session and returns to the attract screen.
Its own service (a short ``kiosk.idle_timeout_s``) and its own browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import service as svc
from tests.helpers.browser import VIEWPORTS, Shots, fake_camera, launch, wait_state
from tests.web.screens_flow import (
    Uploads,
    assert_forgotten,
    choose_effect,
    kiosk_capture,
    kiosk_to_effects,
    media_shown,
    wait_result,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_models, pytest.mark.browser]
sync_api = pytest.importorskip("playwright.sync_api")
IDLE_TIMEOUT_S = 12


@pytest.fixture(scope="module")
def idle_booth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    folder = tmp_path_factory.mktemp("idle")
    with svc.running(folder, env={"EPHEMERA_KIOSK_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}) as s:
        yield s


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_idle_kiosk_counts_down_then_wipes(idle_booth: svc.Service, lang: str,
                                           tmp_path: Path) -> None:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright, fake_camera(tmp_path))
        try:
            page = chromium.new_context(**VIEWPORTS["kiosk-1024x600"]).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            uploads = Uploads(page)
            page.goto(f"http://127.0.0.1:{idle_booth.port}/?lang={lang}")
            kiosk_to_effects(page)
            choose_effect(page, "faces")
            kiosk_capture(page, 1)
            wait_result(page)
            media_shown(page)
            # A touch restarts the wait: the dialog must not be open right after one.
            page.mouse.click(5, 5)
            page.wait_for_selector("#idle-dialog[open]", timeout=IDLE_TIMEOUT_S * 1000)
            first = page.inner_text("#idle-text")
            page.wait_for_timeout(1200)
            second = page.inner_text("#idle-text")
            assert first != second, "the countdown does not count"
            assert page.get_attribute("#idle-text", "aria-live") == "assertive"
            Shots(page, "kiosk-1024x600", lang).take("idle-warning")
            # "I'm still here" keeps everything; then, left alone again, the wipe.
            page.click("[data-action=idle-stay]")
            assert page.evaluate("() => document.body.dataset.state") == "result"
            assert idle_booth.store_files() != []
            wait_state(page, "attract", (IDLE_TIMEOUT_S + 10) * 1000)
            assert errors == []
        finally:
            chromium.close()
    assert_forgotten(idle_booth, uploads)
