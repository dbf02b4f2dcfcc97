"""P1 and P5 under strace for the screens and the admin page, as the kiosk and operator use them.

The proof beside it (test_no_disk_writes.py) drives the API; this one drives what the screens
and the operator call: every page in every language and its assets, consent, a phone hand-off
opened, polled and cancelled, a photo taken and made into a picture, the take-away QR with its
one-time download spent, the booth's Wi-Fi QR, "Done" with its signed deletion receipt, then
the admin page (PIN sign-in, status, self-test, retention, purge, sign-out) and the screens' bad
inputs. The service runs under ``strace -f``; nothing may be written outside the RAM store's
folder and no address off this machine may be reached.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from pathlib import Path

import pytest

from appliance.provision.wifi import wifi_qr_payload
from appliance.secure.pin import hash_pin
from appliance.web.i18n import languages
from tests.helpers import service as svc
from tests.helpers.images import camera_bgr, encode
from tests.helpers.strace_log import STRACE_ARGS, assert_service_kept_to_the_store

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]

PIN = "482916"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _post_json(service: svc.Service, path: str, body: object,
               headers: dict[str, str] | None = None) -> svc.Reply:
    return service.request("POST", path, json.dumps(body).encode(), {**JSON, **(headers or {})})


def _kiosk_flow(service: svc.Service) -> None:
    for code in languages():
        page = service.get(f"/?lang={code}")
        assert page.status == 200 and f'lang="{code}"' in page.body.decode()
    for path in ("/phone", "/take", "/static/css/booth.css", "/static/js/booth.js",
                 "/static/js/machine.js"):
        assert service.get(path).status == 200, path

    consent = {"screen": "kiosk", "attestation": "adults-consenting"}
    assert _post_json(service, "/ui/consent", consent).status == 200

    handoff = _post_json(service, "/ui/handoff?lang=de", {"effect": "faces"})
    assert handoff.status == 200, handoff.body
    hand = handoff.json()
    assert "<svg" in hand["qr_svg"]
    assert service.get(f"/ui/handoff/{hand['handoff_id']}", hand["secret"]).status == 200
    assert service.delete(f"/ui/handoff/{hand['handoff_id']}", hand["secret"]).status == 200

    _photo, job, token = service.photo_job(encode(camera_bgr(), ".jpg"), "image/jpeg")
    assert service.wait_for_job(job, token)["state"] == "done"
    take = service.request("POST", f"/ui/take-away/{job}?lang=fr", headers=_bearer(token))
    assert take.status == 200, take.body
    fragment = dict(urllib.parse.parse_qsl(take.json()["link"].partition("#")[2]))
    download = (f"/api/jobs/{fragment['job']}/outputs/{fragment['output']}"
                f"?download={urllib.parse.quote(fragment['t'])}")
    assert service.get(download).status == 200
    assert service.get(download).status in (403, 404, 410)  # spent: one download only

    wifi = service.get("/ui/wifi-qr?lang=ar")
    assert wifi.status == 200 and wifi.headers["content-type"].startswith("image/svg+xml")

    done = service.request("POST", "/ui/forget?lang=it", headers=_bearer(token))
    assert done.status == 200, done.body
    assert done.json()["results"] >= 1 and done.json()["receipt"] is not None

    # The screens' bad inputs: each a 4xx JSON answer.
    for path, body in (("/ui/consent", {"screen": "kiosk"}), ("/ui/handoff", {"effect": "x"}),
                       ("/ui/handoff/join", {"code": "not-a-code"})):
        reply = _post_json(service, path, body)
        assert 400 <= reply.status < 500 and reply.json()["error"], (path, reply.body)
    stray = service.request("POST", "/ui/take-away/no-such-job", headers=_bearer(token))
    assert 400 <= stray.status < 500


def _admin_flow(service: svc.Service) -> None:
    wrong = service.request("POST", "/admin/login", b"pin=000000", FORM)
    assert wrong.status in (401, 403)
    login = service.request("POST", "/admin/login", f"pin={PIN}".encode(), FORM)
    assert login.status == 303, login.body
    cookie = {"Cookie": login.headers["set-cookie"].split(";", 1)[0]}
    assert service.get("/admin", headers=cookie).status == 200
    assert service.get("/admin/status.json", headers=cookie).json()["store"]["items"] >= 0
    tested = service.request("POST", "/admin/self-test", b"", {**FORM, **cookie})
    assert tested.status == 200, tested.body
    for path, body in (("/admin/retention", b"minutes=5"), ("/admin/purge", b""),
                       ("/admin/logout", b"")):
        assert service.request("POST", path, body, {**FORM, **cookie}).status == 303, path
    assert service.get("/admin/status.json", headers=cookie).status in (401, 403)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed "
                    "(make system-deps installs it)")
def test_screens_and_admin_write_nothing_outside_the_ram_store(tmp_path: Path) -> None:
    wifi = tmp_path / "wifi.json"
    wifi.write_text(json.dumps({"ssid": "Ephemera-Booth",
                                "qr": wifi_qr_payload("Ephemera-Booth", "correct horse")}))
    log = tmp_path / "strace.log"
    service = svc.start(tmp_path, wrapper=("strace", *STRACE_ARGS, "-o", str(log)),
                        env={"EPHEMERA_ADMIN_PIN_HASH": hash_pin(PIN),
                             "EPHEMERA_KIOSK_WIFI_FILE": str(wifi)},
                        ready_timeout=180)
    try:
        _kiosk_flow(service)
        _admin_flow(service)
    finally:
        leftovers = svc.stop_and_sweep(service)
    assert leftovers == []
    assert_service_kept_to_the_store(log, service.store, "strace-screens")
