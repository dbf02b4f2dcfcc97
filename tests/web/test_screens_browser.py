"""The guest screens end to end: Debian's Chromium (Playwright) against the real service
(gunicorn, the reference models), the kiosk's camera a .y4m clip of a real face.

One service and one browser for the module. Every flow ends with the store empty, no trace of
the uploaded photos in the service's memory and, where the guest wiped, a receipt that verifies
with ``ephemera verify-receipt`` and fails after one changed byte. Every screen is photographed
(tmpfs, ``$EPHEMERA_SCREENSHOTS``) in each viewport and checked with axe-core (WCAG 2.2 AA) in
English and Arabic (right to left).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from appliance.effects.registry import effects
from appliance.provision.wifi import wifi_qr_payload
from appliance.web import i18n
from tests.helpers import service as svc
from tests.helpers.browser import (
    VIEWPORTS,
    Shots,
    assert_accessible,
    decode_qr,
    fake_camera,
    launch,
    wait_state,
    watch_errors,
)
from tests.helpers.images import encode, png_chunk_span, with_canary
from tests.helpers.memscan import Canary, encoded_patterns
from tests.web.screens_flow import (
    HoldJobStatus,
    Uploads,
    all_outputs_ready,
    assert_forgotten,
    assert_receipt,
    choose_effect,
    kiosk_capture,
    kiosk_to_effects,
    media_shown,
    receipt_of,
    take_photo,
    wait_result,
    wait_store_empty,
)

pytestmark = [pytest.mark.slow, pytest.mark.needs_models, pytest.mark.browser]
sync_api = pytest.importorskip("playwright.sync_api")

EFFECTS = effects()
WIFI_QR = wifi_qr_payload("Ephemera test booth", "per-event-passphrase")


@pytest.fixture(scope="module")
def booth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    folder = tmp_path_factory.mktemp("booth")
    wifi_file = folder / "wifi.json"  # as provisioning writes it: the booth has its own Wi-Fi
    wifi_file.write_text(json.dumps({"ssid": "Ephemera test booth", "qr": WIFI_QR}))
    with svc.running(folder, env={"EPHEMERA_KIOSK_WIFI_FILE": str(wifi_file)}) as service:
        yield service


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(booth: svc.Service, playwright: Any) -> Iterator[Any]:
    camera_dir = Path("/dev/shm") / f"ephemera-camera-{booth.port}"
    camera_dir.mkdir(exist_ok=True)
    chromium = launch(playwright, fake_camera(camera_dir))
    try:
        yield chromium
    finally:
        chromium.close()
        for path in camera_dir.iterdir():
            path.unlink()
        camera_dir.rmdir()


def new_page(browser: Any, viewport: str, **extra: Any) -> Any:
    context = browser.new_context(**VIEWPORTS[viewport], **extra)
    page = context.new_page()
    watch_errors(page)
    return page


def url(service: svc.Service, path: str) -> str:
    return f"http://127.0.0.1:{service.port}{path}"


def canary_png(seed: int) -> tuple[bytes, dict[str, bytes]]:
    canary = Canary.random(seed=seed)
    png = encode(with_canary(canary), ".png")
    start, end = png_chunk_span(png)
    return png, {**encoded_patterns(png, start, end), **canary.pixel_patterns()}


# -- the kiosk, every effect ------------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(EFFECTS))
def test_kiosk_flow_for_every_effect(booth: svc.Service, browser: Any, key: str,
                                     tmp_path: Path) -> None:
    """Consent, the effect, the camera (3-2-1, each person's turn), progress, every output
    (the first shown while the others render), a one-time QR link, done, a signed receipt."""
    effect = EFFECTS[key]
    page = new_page(browser, "kiosk-1024x600")
    uploads = Uploads(page)
    page.goto(url(booth, "/?lang=en"))
    kiosk_to_effects(page)
    choose_effect(page, key)
    kiosk_capture(page, effect.photos[1])
    wait_result(page)
    assert_accessible(page, f"result of {key}")
    shown = media_shown(page)
    assert shown["width"] > 0, shown
    outputs = page.eval_on_selector_all("#carousel .slide", "els => els.map(e => e.dataset.name)")
    all_outputs_ready(page, len(outputs))
    # Take it with you: the QR code holds a one-time link that opens the picture on a phone.
    page.wait_for_selector("#take-qr svg")
    link = decode_qr(page.locator("#take-qr").screenshot())
    assert urlsplit(link).path == "/take" and "t=" in urlsplit(link).fragment, link
    phone = new_page(browser, "phone-390x844")
    phone.goto(link)
    phone.wait_for_selector("#take-media .media", timeout=30_000)
    phone.context.close()
    again = new_page(browser, "phone-390x844")
    again.goto(link)  # the same link on another phone: spent
    again.wait_for_selector("#take-error:not([hidden])")
    assert again.query_selector("#take-media .media") is None
    again.context.close()
    for index in range(1, len(outputs)):  # swipe (step) through the others
        page.click("[data-action=next]")
        try:
            page.wait_for_function("(n) => document.getElementById('output-counter')"
                                   ".textContent.startsWith(String(n))", arg=index + 1)
        except sync_api.TimeoutError:
            state = page.evaluate("() => [document.body.dataset.state, document.getElementById("
                                  "'output-counter').textContent]")
            raise AssertionError(f"stepping to output {index + 1}: {state} {page.errors}") from None
        assert page.errors == []
    page.click("[data-action=done]")
    wait_state(page, "receipt")
    assert_receipt(booth, receipt_of(page), tmp_path, photos=effect.photos[1], results=1)
    assert page.errors == []
    page.context.close()
    assert_forgotten(booth, uploads)


# -- every screen, every viewport, two languages -----------------------------------------------

@pytest.mark.parametrize("lang", ["en", "ar"])
@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_every_kiosk_screen_is_accessible(booth: svc.Service, browser: Any, viewport: str,
                                          lang: str) -> None:
    """Screenshots and axe-core (zero violations) of each kiosk screen; delete now wipes."""
    page = new_page(browser, viewport, reduced_motion="reduce" if lang == "ar" else
                    "no-preference")
    uploads = Uploads(page)
    shots = Shots(page, viewport, lang)
    page.goto(url(booth, f"/?lang={lang}"))
    assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")
    kiosk_to_effects(page, shots)
    choose_effect(page, "faces", shots)
    wait_state(page, "capture")
    page.click("#screen-capture [data-action=phone]")
    wait_state(page, "handoff")
    page.wait_for_selector("#handoff-qr svg")
    shots.take("handoff")
    page.click("#screen-handoff [data-action=back]")
    hold = HoldJobStatus(page)
    kiosk_capture(page, 1, shots)
    wait_state(page, "progress")
    page.wait_for_function("() => document.getElementById('job-progress').value === 42")
    shots.take("progress")
    hold.release()
    wait_result(page)
    media_shown(page)
    page.wait_for_selector("#take-qr svg")
    # The booth's own Wi-Fi beside the download QR, each with its step.
    page.wait_for_selector("#wifi-qr svg")
    assert decode_qr(page.locator("#wifi-qr").screenshot()) == WIFI_QR
    assert page.is_visible("#wifi-code .step") and page.is_visible("#take-step")
    shots.take("result")
    page.click("#screen-result [data-action=delete]")
    wait_state(page, "receipt")
    page.wait_for_selector("#receipt-qr svg")
    shots.take("receipt")
    page.click("[data-action=restart]")
    wait_state(page, "attract")
    assert page.errors == []
    page.context.close()
    assert_forgotten(booth, uploads)


# -- the phone ------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["de", "ar"])
def test_phone_flow_uploads_raw_photos(booth: svc.Service, browser: Any, lang: str,
                                       tmp_path: Path) -> None:
    """A phone (its language from Accept-Language) picks a photo from its camera roll; it is
    uploaded as the raw body with a progress bar; the result can be saved; delete now."""
    png, canaries = canary_png(seed=31)
    photo = tmp_path / "roll.png"
    photo.write_bytes(png)
    page = new_page(browser, "phone-390x844", locale=lang,
                    extra_http_headers={"Accept-Language": f"{lang},en;q=0.5"})
    uploads = Uploads(page)
    types: list[str] = []
    page.on("request", lambda r: types.append(r.headers.get("content-type", ""))
            if "/api/photos" in r.url and r.method == "POST" else None)
    shots = Shots(page, "phone-390x844", f"phone-{lang}")
    page.goto(url(booth, "/phone"))
    assert page.get_attribute("html", "lang") == lang
    wait_state(page, "attract")
    shots.take("start")
    page.click("[data-action=start]")
    page.check("#consent-check")
    shots.take("consent")
    page.click("[data-action=agree]")
    wait_state(page, "effects")
    shots.take("effects")
    choose_effect(page, "faces", shots)
    wait_state(page, "pick")
    shots.take("pick")
    page.set_input_files("#photo-input-1", str(photo))
    page.wait_for_selector("#picks .thumb:not([hidden])", timeout=60_000)
    assert page.eval_on_selector("#upload-progress", "p => p.value") == 100
    shots.take("picked")
    hold = HoldJobStatus(page)
    page.click("[data-action=send]")
    wait_state(page, "progress")
    page.wait_for_function("() => document.getElementById('job-progress').value === 42")
    shots.take("progress")
    hold.release()
    wait_result(page)
    media_shown(page)
    assert page.get_attribute("#save-link", "href", timeout=5000).startswith("blob:")
    shots.take("result")
    page.click("#screen-result [data-action=delete]")
    wait_state(page, "receipt")
    shots.take("receipt")
    assert_receipt(booth, receipt_of(page), tmp_path, photos=1, results=1)
    assert types == ["image/png"]  # the file itself as the body, never multipart
    assert page.errors == []
    page.context.close()
    assert_forgotten(booth, uploads, canaries)


def test_kiosk_hands_off_to_a_phone_by_qr(booth: svc.Service, browser: Any,
                                         tmp_path: Path) -> None:
    """The kiosk's QR code (decoded from its screenshot) opens the phone flow bound to this
    kiosk's turn; the phone uploads, both screens follow the job, the phone deletes it all."""
    png, canaries = canary_png(seed=37)
    photo = tmp_path / "roll.png"
    photo.write_bytes(png)
    kiosk = new_page(browser, "kiosk-1920x1080")
    kiosk.goto(url(booth, "/?lang=en"))
    kiosk_to_effects(kiosk)
    choose_effect(kiosk, "faces")
    wait_state(kiosk, "capture")
    kiosk.click("#screen-capture [data-action=phone]")
    kiosk.wait_for_selector("#handoff-qr svg")
    link = decode_qr(kiosk.locator("#handoff-qr").screenshot())
    assert urlsplit(link).path == "/phone/join" and urlsplit(link).fragment, link

    phone = new_page(browser, "phone-390x844")
    uploads = Uploads(phone)
    phone.goto(link)
    wait_state(phone, "attract")
    phone.click("[data-action=start]")
    phone.check("#consent-check")
    phone.click("[data-action=agree]")
    wait_state(phone, "pick")  # the effect was chosen on the kiosk
    kiosk.wait_for_function("() => document.getElementById('handoff-status').textContent"
                            ".length > 0 && document.body.dataset.state === 'handoff'")
    phone.set_input_files("#photo-input-1", str(photo))
    phone.wait_for_selector("#picks .thumb:not([hidden])", timeout=60_000)
    phone.click("[data-action=send]")
    wait_result(phone)
    wait_result(kiosk)  # the kiosk shows the same job
    media_shown(kiosk)
    # The link worked once: a second phone with the same link is turned away.
    other = new_page(browser, "phone-390x844")
    other.goto(link)
    other.click("[data-action=start]")
    other.check("#consent-check")
    other.click("[data-action=agree]")
    other.wait_for_selector("#attract-notice:not([hidden])")
    other.context.close()

    phone.click("#screen-result [data-action=delete]")
    wait_state(phone, "receipt")
    assert_receipt(booth, receipt_of(phone), tmp_path, photos=1, results=1)
    wait_state(kiosk, "attract")  # wiped from the phone: the kiosk lets go too
    assert kiosk.is_visible("#attract-notice")
    assert phone.errors == [] and kiosk.errors == []
    phone.context.close()
    kiosk.context.close()
    assert_forgotten(booth, uploads, canaries)


# -- the options screen ------------------------------------------------------------------------

def test_chosen_options_go_with_the_job(booth: svc.Service, browser: Any) -> None:
    """The guest picks one headshot style and moves the retouch slider: the job's request
    carries both, and the booth makes only that style."""
    page = new_page(browser, "kiosk-1024x600")
    uploads = Uploads(page)
    jobs: list[dict[str, Any]] = []
    page.on("request", lambda r: jobs.append(json.loads(r.post_data or "{}"))
            if r.method == "POST" and urlsplit(r.url).path == "/api/jobs" else None)
    try:
        page.goto(url(booth, "/?lang=en"))
        kiosk_to_effects(page)
        page.click("[data-effect=headshot]")
        wait_state(page, "options")
        page.wait_for_selector("#option-retouch")
        # Every default preselected, each value shown beside its slider.
        assert page.is_checked("#option-style input[value=all]")
        assert page.input_value("#option-retouch") == "0.7"
        assert page.inner_text("#option-retouch-value") == "70%"
        assert page.inner_text("#option-relight-value") == "100%"
        assert_accessible(page, "the headshot's options")
        page.check("#option-style input[value=corporate_grey]")
        page.focus("#option-retouch")
        page.keyboard.press("ArrowLeft")  # one step: a twentieth of the range
        assert page.inner_text("#option-retouch-value") == "65%"
        assert page.get_attribute("#option-retouch", "aria-valuetext") == "65%"
        page.click("#screen-options [data-action=options-continue]")
        kiosk_capture(page, 1)
        wait_result(page)
        assert [job["params"] for job in jobs] == [
            {"style": "corporate_grey", "retouch": 0.65, "relight": 1}]
        names = page.eval_on_selector_all("#carousel .slide", "els => els.map(e => e.dataset.name)")
        assert names == ["corporate_grey.jpg"], names
        media_shown(page)
        page.click("[data-action=done]")
        wait_state(page, "receipt")
        assert page.errors == []
    finally:
        page.context.close()
    wait_store_empty(booth)  # wiped while the job may still be finishing
    assert_forgotten(booth, uploads)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_kiss_one_photo_of_both_is_one_shot(booth: svc.Service, browser: Any, lang: str) -> None:
    """The kiss takes one photo of both or one of each: "one photo of both" makes the capture
    screen ask for one photo holding two faces (the test's clip holds one: the gate says so,
    and no second shot is asked for). The options screen passes axe-core in both directions."""
    page = new_page(browser, "kiosk-1024x600")
    uploads = Uploads(page)
    uploaded: list[str] = []
    page.on("request", lambda r: uploaded.append(urlsplit(r.url).query)
            if r.method == "POST" and urlsplit(r.url).path == "/api/photos" else None)
    language = i18n.language(lang)
    try:
        page.goto(url(booth, f"/?lang={lang}"))
        kiosk_to_effects(page)
        page.click("[data-effect=kiss]")
        wait_state(page, "options")
        page.wait_for_selector("#option-shots")
        assert page.is_checked("#option-shots input[value='2']")  # the default: one each
        assert page.is_checked("#option-side input[value=left]")
        assert page.locator("#option-shots input").count() == 2
        assert language.gettext("One photo of both of you") in page.inner_text("#option-shots")
        Shots(page, "kiosk-1024x600", lang).take("options-kiss")  # with axe-core
        page.check("#option-shots input[value='1']")
        page.click("#screen-options [data-action=options-continue]")
        wait_state(page, "capture")
        one_of_one = language.gettext("Photo {n} of {total}").format(n=1, total=1)
        assert page.inner_text("#capture-title") == one_of_one
        take_photo(page)
        page.click("[data-action=keep]")
        page.wait_for_selector("#capture-error:not([hidden])", timeout=60_000)
        assert page.evaluate("() => document.body.dataset.state") == "capture"
        assert page.inner_text("#capture-title") == one_of_one
        assert len(uploaded) == 1 and "faces=2" in uploaded[0].split("&"), uploaded
        assert page.errors == []
    finally:
        page.context.close()
    assert_forgotten(booth, uploads)


# -- the gate and the failsafe -----------------------------------------------------------------

def test_no_face_shows_the_friendly_message_and_lets_the_guest_retake(
        booth: svc.Service, playwright: Any) -> None:
    """Chromium's own fake camera (a green test pattern) shows nobody: the gate's 422 becomes
    a friendly message on the capture screen, and the guest can take the photo again."""
    chromium = launch(playwright, None)
    try:
        page = new_page(chromium, "kiosk-1024x600")
        uploads = Uploads(page)
        shots = Shots(page, "kiosk-1024x600", "en")
        page.goto(url(booth, "/?lang=en"))
        kiosk_to_effects(page)
        choose_effect(page, "faces")
        wait_state(page, "capture")
        take_photo(page)
        page.click("[data-action=keep]")
        page.wait_for_selector("#capture-error:not([hidden])", timeout=60_000)
        assert "face" in page.inner_text("#capture-error")
        shots.take("gate-no-face")
        assert page.is_visible("#screen-capture [data-action=shoot]")
        take_photo(page)  # the retake works the same way
        page.click("[data-action=keep]")
        page.wait_for_selector("#capture-error:not([hidden])", timeout=60_000)
        assert page.evaluate("() => document.body.dataset.state") == "capture"
        assert page.errors == []
        assert len(uploads.bodies) == 2
    finally:
        chromium.close()
    assert_forgotten(booth, uploads, flat_photos=True)


def test_failsafe_wipes_and_returns_to_attract(booth: svc.Service, browser: Any) -> None:
    """An answer no screen expects (the job status turns into garbage) sends the kiosk back to
    the attract screen with its notice, and the session is wiped on the server."""
    page = new_page(browser, "kiosk-1024x600")
    uploads = Uploads(page)
    page.route("**/api/jobs/*", lambda route: route.fulfill(
        status=200, content_type="application/json", body='{"state": "running"}')
        if route.request.method == "GET" else route.fallback())
    page.goto(url(booth, "/?lang=en"))
    kiosk_to_effects(page)
    choose_effect(page, "faces")
    kiosk_capture(page, 1)
    wait_state(page, "attract", 60_000)
    page.wait_for_selector("#attract-notice:not([hidden])")
    page.context.close()
    import time

    deadline = time.monotonic() + 30
    while booth.store_files() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert_forgotten(booth, uploads)
