"""The screens guests use: the kiosk's touch flow, the phone flow, and their small JSON helpers.

Why one page per device with every screen in it: the flow is a state machine in the browser
(``static/js/machine.js``) that mirrors the job states of the API; the server renders the text
in the guest's language (the catalogue in ``i18n``) and the effect menu from the registry, so a
new effect or a new language needs no change here. The page loads only the booth's own script
and style sheet (no CDN, no inline script: the Content-Security-Policy below forbids both).

    GET    /                          the kiosk (``?lang=de`` picks the language)
    GET    /phone                     the phone flow (language from Accept-Language)
    GET    /phone/join                the phone flow for a kiosk hand-off (code in the #fragment)
    GET    /take                      a "take it with you" link (one-time token in the #fragment)
    POST   /ui/consent                the consent screen's attestation, as an audit event
    POST   /ui/handoff                kiosk: a hand-off QR code for the chosen effect
    GET    /ui/handoff/<id>           kiosk: has the phone joined / uploaded? (kiosk secret)
    DELETE /ui/handoff/<id>           kiosk: cancel it
    POST   /ui/handoff/join           phone: join with the code from the QR link
    POST   /ui/handoff/deliver        phone: hand the session with its job to the kiosk
    POST   /ui/take-away/<job_id>     a QR code with a one-time, expiring download link
    GET    /ui/wifi-qr                kiosk: the booth's own Wi-Fi as a QR code (SVG), or 404
    POST   /ui/forget                 wipe the session now; a signed deletion receipt
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for

from appliance import __version__
from appliance.audit import audit
from appliance.config import Config
from appliance.errors import UserFacingError
from appliance.web import i18n
from appliance.web.access import phone_link, request_session_token
from appliance.web.handoff import HANDOFF_TTL_S, HandoffBoard
from appliance.web.i18n import N_
from appliance.web.qr import qr_svg
from appliance.web.screen_text import script_text
from appliance.web.wifi_qr import wifi_payload

MAX_UI_BODY = 4 << 10
SCREENS = ("kiosk", "phone")
# Strict: only this booth's own script, styles, pictures and API; no inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

screens = Blueprint("screens", __name__)


@screens.after_request
def _headers(response: Response) -> Response:
    """The pages' own protection; an app-wide policy set earlier is left as it is."""
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers["Cache-Control"] = "no-store"
    return response


def _cfg() -> Config:
    cfg: Config = current_app.config["EPHEMERA"]
    return cfg


def _board() -> HandoffBoard:
    board: HandoffBoard = current_app.extensions["ephemera.handoffs"]
    return board


_bearer = request_session_token


def _small_json() -> dict[str, Any]:
    """A screen's few-byte JSON body, read with one bounded read (never get_json)."""
    length = request.content_length or 0
    if length > MAX_UI_BODY:
        raise UserFacingError("too_many_bytes", "The request is too large.", status=413,
                              remedy=f"Send at most {MAX_UI_BODY} bytes.")
    if not length:
        return {}
    try:
        body = json.loads(request.stream.read(length))
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise UserFacingError("bad_request", "The request must be a JSON object.", status=400,
                              remedy="Send JSON with Content-Type application/json.")
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise UserFacingError("bad_request", f"'{name}' is missing.", status=400,
                              remedy=f"Send '{name}' as a string.")
    return value


def _effects_menu(lang: i18n.Language) -> list[dict[str, Any]]:
    from appliance.effects.registry import effects

    translate = lang.gettext  # the effects' own (English) text, through the catalogue
    menu = []
    for effect in effects().values():
        entry = effect.describe()
        entry["title"] = translate(effect.title)
        entry["summary"] = translate(effect.summary)
        for output in entry["outputs"]:
            output["title"] = translate(output["title"]) if output["title"] else ""
        for param in entry["params"]:  # the options screen's words
            param["label"] = translate(param["label"])
            param["choice_labels"] = [translate(label) for label in param["choice_labels"]]
        entry["shots"] = effect.photos[1]
        entry["faces_per_shot"] = max(1, effect.faces // effect.photos[1])
        entry["shot_choices"] = _shot_choices(effect.photos, effect.faces, translate)
        menu.append(entry)
    return menu


def _shot_choices(photos: tuple[int, int], faces: int,
                  translate: Callable[[str], str]) -> list[dict[str, Any]]:
    """An effect that takes a range of photo counts (the kiss: one photo of both, or one of
    each): the counts the options screen offers, most photos first (the default)."""
    low, high = photos
    if low == high:
        return []
    choices = []
    for count in range(high, low - 1, -1):
        if count == 1 and faces > 1:
            label = translate(N_("One photo of both of you"))
        elif count == faces:
            label = translate(N_("A photo of each of you"))
        else:
            label = translate(N_("{n} photos")).replace("{n}", str(count))
        choices.append({"shots": count, "label": label})
    return choices


def _page(screen: str, lang: i18n.Language, **extra: Any) -> str:
    cfg = _cfg()
    booth = {"screen": screen, "lang": lang.code, "idle_timeout_s": cfg.kiosk.idle_timeout_s,
             "retention_minutes": cfg.retention.default_minutes,
             "effects": _effects_menu(lang), **script_text(lang), **extra}
    return render_template(
        "booth.html", screen=screen, lang=lang, languages=i18n.languages().values(),
        _=lang.gettext, booth_json=json.dumps(booth, ensure_ascii=False).replace("</", "<\\/"),
        effects=booth["effects"], version=__version__)


@screens.get("/")
def kiosk_page() -> str:
    return _page("kiosk", i18n.language(request.args.get("lang")))


def _phone_language() -> i18n.Language:
    asked = request.args.get("lang")
    if asked in i18n.languages():
        return i18n.language(asked)
    return i18n.from_accept_language(request.headers.get("Accept-Language"))


@screens.get("/phone")
def phone_page() -> str:
    return _page("phone", _phone_language())


@screens.get("/phone/join")
def phone_join_page() -> str:
    return _page("phone", _phone_language(), joining=True)


@screens.get("/take")
def take_page() -> str:
    lang = _phone_language()
    return render_template("take.html", lang=lang, _=lang.gettext,
                           booth_json=json.dumps(script_text(lang), ensure_ascii=False)
                           .replace("</", "<\\/"))


# -- the screens' JSON helpers ------------------------------------------------------------------

@screens.post("/ui/consent")
def consent() -> Any:
    """Recorded as an audit event: which screen, and the attestation; nothing about anyone."""
    body = _small_json()
    screen = body.get("screen")
    if screen not in SCREENS or body.get("attestation") != "adults-consenting":
        raise UserFacingError("consent_required", "Everyone in the photo must agree, and must "
                              "be an adult.", status=400,
                              remedy='Send {"screen": "kiosk", "attestation": '
                                     '"adults-consenting"}.')
    audit("consent_given", screen=screen, attestation="adults-consenting")
    return jsonify({"recorded": True})


def _absolute(path: str) -> str:
    """A link for a phone: the LAN listener's address, or this booth's as the browser
    reached it when the LAN is off."""
    return phone_link(path)


@screens.post("/ui/handoff")
def open_handoff() -> Any:
    from appliance.effects.registry import get_effect

    effect = get_effect(_text(_small_json(), "effect"))
    handoff, code, kiosk_secret = _board().open(effect.key)
    lang = i18n.language(request.args.get("lang"))
    link = _absolute(url_for("screens.phone_join_page")) + "#" + quote(code)
    return jsonify({"handoff_id": handoff.id, "secret": kiosk_secret, "link": link,
                    "expires_in_s": HANDOFF_TTL_S,
                    "qr_svg": qr_svg(link, lang.gettext("QR code: open the booth on your "
                                                        "phone"))})


@screens.get("/ui/handoff/<handoff_id>")
def poll_handoff(handoff_id: str) -> Any:
    return jsonify(_board().poll(handoff_id, _bearer()))


@screens.delete("/ui/handoff/<handoff_id>")
def cancel_handoff(handoff_id: str) -> Any:
    _board().cancel(handoff_id, _bearer())
    return jsonify({"cancelled": True})


@screens.post("/ui/handoff/join")
def join_handoff() -> Any:
    handoff = _board().join(_text(_small_json(), "code"))
    return jsonify({"effect": handoff.effect})


@screens.post("/ui/handoff/deliver")
def deliver_handoff() -> Any:
    body = _small_json()
    token = _bearer()
    job = current_app.extensions["ephemera.jobs"].job_for_session(_text(body, "job_id"), token)
    assert token is not None  # job_for_session refuses a request without one
    _board().deliver(_text(body, "code"), token, job.id)
    return jsonify({"delivered": True})


@screens.post("/ui/take-away/<job_id>")
def take_away(job_id: str) -> Any:
    manager = current_app.extensions["ephemera.jobs"]
    job = manager.job_for_session(job_id, _bearer())
    with job.lock:
        names = list(job.outputs)
    name = request.args.get("output") or (names[0] if names else "")
    if name not in names:
        raise UserFacingError("output_not_found", "This job makes no such output.", status=404,
                              remedy="Name one of the outputs in the job's status.")
    token, expires_in = manager.issue_download_token(job)
    lang = i18n.language(request.args.get("lang"))
    fragment = f"job={quote(job.id)}&output={quote(name)}&t={quote(token)}"
    link = _absolute(url_for("screens.take_page")) + "#" + fragment
    return jsonify({"link": link, "expires_in_s": expires_in, "single_use": True,
                    "qr_svg": qr_svg(link, lang.gettext("QR code: download this picture"))})


@screens.get("/ui/wifi-qr")
def wifi_qr() -> Any:
    """"Join the booth's Wi-Fi" beside the download QR, so a phone downloads with no internet.

    Only for the booth's own screen: the password is for guests standing at the booth.
    """
    try:
        from_kiosk = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        from_kiosk = False
    if not from_kiosk:
        raise UserFacingError("kiosk_only", "The Wi-Fi code is only shown on the booth's screen.",
                              status=403, remedy="Use the booth's touchscreen.")
    payload = wifi_payload(_cfg().kiosk.wifi_file)
    if payload is None:
        raise UserFacingError("no_booth_wifi", "This booth offers no Wi-Fi of its own.",
                              status=404, remedy="Turn on the booth's Wi-Fi in provisioning "
                                                 "(wifi.enabled), or use the download QR alone.")
    lang = i18n.language(request.args.get("lang"))
    svg = qr_svg(payload, lang.gettext("QR code: join the booth's Wi-Fi"))
    return Response(svg, mimetype="image/svg+xml")


@screens.post("/ui/forget")
def forget() -> Any:
    """"Delete now" and "Done": the session's photos, results and keys, now; then a receipt."""
    from appliance.web.receipts import ReceiptKeyError, sign_receipt

    released = current_app.extensions["ephemera.jobs"].release_session(_bearer())
    photos, results = int(released.get("photos", 0)), int(released.get("jobs", 0))
    body: dict[str, Any] = {"deleted": True, "photos": photos, "results": results}
    key = current_app.extensions.get("ephemera.receipt_key")
    if key is None:
        body["receipt"] = None
        return jsonify(body)
    try:
        receipt = sign_receipt(key, photos=photos, results=results, keys=photos + results)
    except ReceiptKeyError:  # pragma: no cover - the key was loaded at start-up
        receipt = None
    body["receipt"] = receipt
    if receipt is not None:
        compact = json.dumps(receipt, sort_keys=True, separators=(",", ":"))
        lang = i18n.language(request.args.get("lang"))
        body["receipt_qr_svg"] = qr_svg(compact, lang.gettext("QR code: your deletion receipt"))
    return jsonify(body)


def install_screens(app: Any, cfg: Config) -> None:
    """Register the screens and load (in development: make) the receipt key."""
    from appliance.web.receipts import ReceiptKeyError, load_key

    app.extensions["ephemera.handoffs"] = HandoffBoard()
    try:
        app.extensions["ephemera.receipt_key"] = load_key(cfg.kiosk.receipt_key,
                                                          create=not cfg.strict)
    except (ReceiptKeyError, OSError) as exc:
        app.logger.warning("deletion receipts are off: %s", exc)
        app.extensions["ephemera.receipt_key"] = None
    app.register_blueprint(screens)
