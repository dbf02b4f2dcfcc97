"""The two faces of the service, seen from real networks (ip netns, veth pairs).

Three namespaces made here: the booth (its kiosk on loopback, its LAN listener on 10.77.0.1),
a guest LAN (10.77.0.2, inside ``lan.allowed_cidrs``) and an outside network (10.78.0.2, routed
to the booth but outside the allowed ranges). Clients run inside the namespaces and verify the
booth's certificate against the CA it made on first run, as a phone that trusts it would.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.secure import tls
from tests.helpers import service as svc
from tests.helpers.browser import CHROMIUM
from tests.helpers.images import astronaut_bgr, encode
from tests.helpers.lan_booth import KIOSK_PORT, LAN_PORT, ORIGIN, PIN, Booth, Reply, running_booth
from tests.helpers.netns import BOOTH_LAN, BOOTH_OUT, OUTSIDER, add_guest_addresses

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="network namespaces need root and iproute2 (make installs it)")



@pytest.fixture(scope="module")
def booth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booth]:
    with running_booth(tmp_path_factory.mktemp("lan")) as running:
        yield running


def test_a_phone_on_the_lan_reaches_its_pages_over_verified_tls(booth: Booth,
                                                                 tmp_path: Path) -> None:
    page = booth.one("lan", "/phone")
    assert page.status == 200, page.raw
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    # The booth's address root sends a phone to its page; the API answers too.
    root = booth.one("lan", "/")
    assert root.status == 303 and root.headers["location"].endswith("/phone")
    assert booth.one("lan", "/api/effects").status == 200
    # Against another CA the certificate does not verify: the client really checks it.
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(tls.cert_pem(tls.make_ca("someone else").cert))
    untrusted = booth.run("lan", [{"url": ORIGIN + "/phone", "cafile": str(other_ca)}])[0]
    assert untrusted.get("error") == "certificate", untrusted


def test_the_kiosk_listener_is_plain_http_on_loopback_only(booth: Booth) -> None:
    kiosk = booth.one("booth", "/")
    assert kiosk.status == 200 and "strict-transport-security" not in kiosk.headers
    # Phone pages are for phones: with the LAN on, not on the kiosk's listener.
    phone = booth.one("booth", "/phone")
    assert phone.status == 403 and phone.json()["error"] == "phone_only"


def test_kiosk_routes_are_unreachable_from_the_lan(booth: Booth) -> None:
    for method, path in (("POST", "/ui/handoff"), ("GET", "/kiosk")):
        reply = booth.one("lan", path, method, headers={"Origin": ORIGIN})
        assert reply.status == 403, (path, reply.raw)
        assert reply.json()["error"] == "kiosk_only"
    # The kiosk's own port is not on the LAN address at all.
    closed = booth.one("lan", "", url=f"http://{BOOTH_LAN}:{KIOSK_PORT}/")
    assert closed.raw.get("error") == "connect"


def test_an_address_outside_the_allowed_ranges_is_refused(booth: Booth) -> None:
    reply = booth.one("out", "/phone")
    assert reply.status == 403
    body = reply.json()
    assert body["error"] == "not_on_lan" and body["remedy"]
    assert OUTSIDER not in booth.log.read_text()  # refused and audited, never its address


def test_nothing_else_is_open_on_the_booth(booth: Booth) -> None:
    found = booth.run("lan", [{"scan": BOOTH_LAN, "ports": [1, 65535]},
                              {"scan": BOOTH_OUT, "ports": [1, 65535]}])
    assert found[0]["open"] == [LAN_PORT]
    assert found[1]["open"] == []  # the LAN listener binds its address only


def test_state_changes_need_the_booths_own_origin(booth: Booth) -> None:
    photo = encode(astronaut_bgr(), ".jpg")
    upload = {"method": "POST", "url": ORIGIN + "/api/photos",
              "body_b64": base64.b64encode(photo).decode(),
              "headers": {**svc.CONSENT, "Content-Type": "image/jpeg"}}
    missing, foreign, cross_site = (Reply(a) for a in booth.run("lan", [
        upload, {**upload, "headers": {**upload["headers"], "Origin": "https://evil.example"}},
        {**upload, "headers": {**upload["headers"], "Origin": ORIGIN,
                               "Sec-Fetch-Site": "cross-site"}}]))
    assert (missing.status, missing.json()["error"]) == (403, "origin_required")
    assert (foreign.status, foreign.json()["error"]) == (403, "csrf_refused")
    assert (cross_site.status, cross_site.json()["error"]) == (403, "csrf_refused")
    wrong_host = booth.one("lan", "/phone", headers={"Host": "evil.example"})
    assert wrong_host.status == 421 and wrong_host.json()["error"] == "wrong_host"


def test_the_session_lives_in_a_strict_cookie_on_the_lan(booth: Booth) -> None:
    photo = encode(astronaut_bgr(), ".jpg")
    reply = Reply(booth.run("lan", [{
        "method": "POST", "url": ORIGIN + "/api/photos",
        "body_b64": base64.b64encode(photo).decode(),
        "headers": {**svc.CONSENT, "Content-Type": "image/jpeg", "Origin": ORIGIN}}])[0])
    assert reply.status == 201, reply.raw
    body = reply.json()
    assert "session_token" not in body  # never readable by the page's scripts
    (cookie,) = reply.cookies
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "SameSite=Strict" in cookie and cookie.startswith("__Host-ephemera-session=")
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 256 bits in URL-safe base64
    own = booth.one("lan", f"/api/photos/{body['photo_id']}",
                    headers={"Cookie": f"__Host-ephemera-session={token}"})
    assert own.status == 200, own.raw
    guessed = booth.one("lan", f"/api/photos/{body['photo_id']}",
                        headers={"Cookie": "__Host-ephemera-session=" + secrets.token_urlsafe(16)})
    assert guessed.status in (401, 403) and guessed.json()["error"] == "token_invalid"
    gone = booth.one("lan", "/api/session", "DELETE", headers={
        "Cookie": f"__Host-ephemera-session={token}", "Origin": ORIGIN})
    assert gone.status == 200 and gone.json()["deleted"] is True


def test_guessing_tokens_is_rate_limited(booth: Booth) -> None:
    attempts = [{"url": f"{ORIGIN}/api/jobs/{secrets.token_hex(16)}",
                 "headers": {"Authorization": f"Bearer {secrets.token_urlsafe(16)}"}}
                for _ in range(30)]
    replies = [Reply(a) for a in booth.run("lan", attempts)]
    statuses = [r.status for r in replies]
    assert 429 in statuses, statuses
    limited = replies[statuses.index(429)]
    assert limited.json()["error"] == "too_many_attempts"
    assert int(limited.headers["retry-after"]) >= 1
    assert all(s in (401, 403, 404, 429) for s in statuses)


def test_the_admin_page_is_on_the_lan_over_tls_behind_the_pin(booth: Booth) -> None:
    page = booth.one("lan", "/admin")
    assert page.status == 200 and b'name="pin"' in page.body
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    closed = booth.one("lan", "/admin/status.json")
    assert closed.status == 401 and closed.json()["error"] == "admin_login_required"
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": ORIGIN}
    signed_in = booth.one("lan", "/admin/login", "POST", headers=form,
                          body_b64=base64.b64encode(f"pin={PIN}".encode()).decode())
    assert signed_in.status == 303, signed_in.raw
    (cookie,) = signed_in.cookies
    assert cookie.startswith("__Host-ephemera-admin=") and "Secure" in cookie
    session = cookie.split(";")[0]
    status = booth.one("lan", "/admin/status.json", headers={"Cookie": session})
    assert status.status == 200 and status.json()["queue"]["depth"] >= 1


def test_stalled_handshakes_hold_no_thread_and_are_dropped(booth: Booth) -> None:
    answers = booth.run("lan", [
        {"stall": 12, "host": BOOTH_LAN, "port": LAN_PORT},
        *[{"url": ORIGIN + "/phone"} for _ in range(6)],  # more than the worker has threads
        {"wait_closed": 30},
    ])
    assert answers[0] == {"stalled": 12}
    assert [Reply(a).status for a in answers[1:7]] == [200] * 6
    closed = answers[7]["closed_after_s"]
    assert closed is not None and closed <= 20  # the head deadline (10 s) covers the handshake


def test_a_phone_browser_gets_the_page_and_passes_the_origin_check(booth: Booth) -> None:
    """Chromium on the LAN: / sends it to /phone, the page's script runs without errors under
    the CSP, and its own fetches pass the Origin rule (a DELETE reaches the API: 401, not 403)."""
    pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make installs it)")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    cert = x509.load_pem_x509_certificate((booth.ca.parent / "server.pem").read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    pin = base64.b64encode(digest.finalize()).decode()
    done = subprocess.run(
        ["ip", "netns", "exec", booth.names["lan"], sys.executable, "-m",
         "tests.helpers.netns_browser", json.dumps({"origin": ORIGIN, "spki": pin})],
        capture_output=True, text=True, timeout=300, cwd=svc.REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["status"] == 200 and seen["url"] == ORIGIN + "/phone", seen
    assert seen["page_errors"] == [], seen
    # Every failed load is the browser's own favicon guess or this test's deliberate DELETE
    # (Chromium logs each as a console error); no CSP violation, no script error.
    expected = {(404, ORIGIN + "/favicon.ico"), (401, ORIGIN + "/api/session")}
    assert {tuple(f) for f in seen["failed"]} <= expected, seen
    assert all(e.startswith("Failed to load resource") for e in seen["console_errors"]), seen
    assert seen["effects"] == 200
    assert (seen["forget"], seen["forget_error"]) == (401, "token_required"), seen
    assert "ephemera-session" not in seen["cookie"]  # HttpOnly: never visible to scripts


def test_progress_streams_over_tls_with_a_cap_per_phone(booth: Booth) -> None:
    """A phone follows its job over the TLS listener with its cookie; a seventh stream from
    the same phone is refused (429 JSON), the others end with the job's last state."""
    # A phone of its own: the guessing test above has this module's usual client rate-limited.
    (phone,) = add_guest_addresses(booth.names, booth.names["lan"].split("-", 1)[1], 1)
    photo = encode(astronaut_bgr(), ".jpg")
    upload = Reply(booth.run("lan", [{
        "method": "POST", "url": ORIGIN + "/api/photos?effect=headshot",
        "body_b64": base64.b64encode(photo).decode(),
        "headers": {**svc.CONSENT, "Content-Type": "image/jpeg", "Origin": ORIGIN},
        "source": phone}])[0])
    assert upload.status == 201, upload.raw
    cookie = {"Cookie": upload.cookies[0].split(";")[0]}
    start = {"method": "POST", "url": ORIGIN + "/api/jobs", "body_b64": base64.b64encode(
        json.dumps({"effect": "headshot", "photos": [upload.json()["photo_id"]]}).encode())
        .decode(), "headers": {**cookie, "Content-Type": "application/json", "Origin": ORIGIN},
        "source": phone}
    jobs = [Reply(answer) for answer in booth.run("lan", [dict(start), dict(start)])]
    assert [job.status for job in jobs] == [202, 202], [job.raw for job in jobs]
    job_id = jobs[1].json()["job_id"]  # waits behind the first: its streams stay open
    (answer,) = booth.run("lan", [{"streams": 7, "url": f"{ORIGIN}/api/jobs/{job_id}/events",
                                   "headers": cookie, "source": phone}])
    replies = [Reply(stream) for stream in answer["streams"]]
    assert [r.status for r in replies] == [200] * 6 + [429], [r.raw for r in replies]
    refused = replies[6]
    assert refused.json()["error"] == "too_many_streams" and refused.headers["retry-after"]
    final = booth.one("lan", f"/api/jobs/{job_id}", headers=cookie, source=phone).json()
    assert final["state"] == "done"
    for reply in replies[:6]:
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert reply.headers["strict-transport-security"].startswith("max-age=")
        assert reply.headers["cache-control"] == "no-store"
        blocks = [b for b in reply.body.decode().split("\n\n") if b.startswith("data:")]
        assert json.loads(blocks[0][5:])["state"] in ("queued", "running")
        assert json.loads(blocks[-1][5:]) == final
    for job in jobs:
        booth.one("lan", f"/api/jobs/{job.json()['job_id']}", "DELETE",
                  headers={**cookie, "Origin": ORIGIN}, source=phone)
