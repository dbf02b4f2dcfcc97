"""Who may reach what, on both faces of the service, with the app's own test client.

The LAN face is what the TLS listener marks (``ephemera.lan`` in the WSGI environ, which no
client can set); tests/web/test_lan_netns.py proves the same rules over real sockets.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import load_config
from appliance.secure.buffers import REGISTRY
from appliance.web.access import SESSION_COOKIE, UPLOADS_PER_MINUTE, route_class
from appliance.web.app import create_app, shutdown_app
from tests.helpers.images import astronaut_bgr, encode

CONSENT = {"X-Ephemera-Consent": "adults-consenting"}
KIOSK = {"REMOTE_ADDR": "127.0.0.1"}
LAN = {"REMOTE_ADDR": "10.77.0.2", "ephemera.lan": True, "wsgi.url_scheme": "https"}
LAN_BASE = "https://10.77.0.1:8443"
KIOSK_BASE = "http://127.0.0.1:8080"


@pytest.fixture
def app(ram_dir: Path) -> Iterator[Flask]:
    BEFORE.clear()
    BEFORE.update(id(b) for b in REGISTRY.live())  # other tests' apps may still hold some
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(ram_dir / "store"),
                           "EPHEMERA_LAN_ENABLED": "true", "EPHEMERA_LAN_ADDRESS": "10.77.0.1",
                           "EPHEMERA_LAN_ALLOWED_CIDRS": "10.77.0.0/24"})
    application = create_app(cfg)
    yield application
    shutdown_app(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def lan(client: FlaskClient, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Origin": LAN_BASE, **kwargs.pop("headers", {})}
    return client.open(LAN_BASE + path, method=method, environ_base=LAN, headers=headers,
                       **kwargs)


def kiosk(client: FlaskClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.open(KIOSK_BASE + path, method=method, environ_base=KIOSK, **kwargs)


def error(reply: Any) -> tuple[int, str]:
    return reply.status_code, reply.get_json()["error"]


BEFORE: set[int] = set()


def nothing_retained(app: Flask) -> None:
    """No job, photo or session of this app, and no secure buffer made since it started."""
    stats = app.extensions["ephemera.jobs"].stats()
    assert (stats["jobs"], stats["photos"], stats["sessions"]) == (0, 0, 0)
    made = [b for b in REGISTRY.live() if id(b) not in BEFORE]
    assert [b.label for b in made if not b.owner.startswith(("model", "backend:"))] == []


@pytest.mark.parametrize(("path", "kind"), [
    ("/", "kiosk"), ("/kiosk", "kiosk"), ("/ui/handoff", "kiosk"), ("/ui/handoff/x", "kiosk"),
    ("/phone", "phone"), ("/phone/join", "phone"), ("/take", "phone"),
    ("/ui/handoff/join", "phone"), ("/api/photos", "shared"), ("/admin", "shared"),
    ("/healthz", "shared"), ("/phoneX", "shared"),
])
def test_route_classes(path: str, kind: str) -> None:
    assert route_class(path) == kind


def _every_route(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "x0", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def test_security_headers_on_every_route_on_both_faces(client: FlaskClient, app: Flask) -> None:
    routes = _every_route(app)
    assert len(routes) > 10
    for method, path in routes:
        for face, reply in (("lan", lan(client, method, path)),
                            ("kiosk", kiosk(client, method, path))):
            where = (face, method, path, reply.status_code)
            assert reply.status_code < 500, where
            headers = reply.headers
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], where
            assert headers["X-Content-Type-Options"] == "nosniff", where
            assert headers["Referrer-Policy"] == "no-referrer", where
            assert headers["Cache-Control"] == "no-store", where
            hsts = headers.get("Strict-Transport-Security")
            assert (hsts is not None) == (face == "lan"), where
            if reply.status_code >= 400 and reply.mimetype == "application/json":
                assert {"error", "message", "remedy"} <= set(reply.get_json()), where


def test_plain_http_from_the_lan_and_wrong_hosts_are_refused(client: FlaskClient) -> None:
    plain = client.get(KIOSK_BASE + "/healthz", environ_base={"REMOTE_ADDR": "10.77.0.2"})
    assert error(plain) == (403, "tls_required")
    rebound = client.get("http://evil.example/healthz", environ_base=KIOSK)
    assert error(rebound) == (421, "wrong_host")
    assert error(lan(client, "GET", "/healthz", headers={"Host": "10.77.0.1"})) == (
        421, "wrong_host")  # the LAN port is part of the booth's origin


def test_csrf_on_every_state_change(client: FlaskClient, app: Flask) -> None:
    for method, path in (("POST", "/api/photos"), ("POST", "/api/jobs"),
                         ("DELETE", "/api/session"), ("DELETE", "/api/jobs/x0")):
        missing = client.open(LAN_BASE + path, method=method, environ_base=LAN)
        assert error(missing) == (403, "origin_required"), path
        wrong = lan(client, method, path, headers={"Origin": "https://10.77.0.1:9999"})
        assert error(wrong) == (403, "csrf_refused"), path
        foreign = kiosk(client, method, path, headers={"Origin": "https://evil.example"})
        assert error(foreign) == (403, "csrf_refused"), path
        cross = kiosk(client, method, path, headers={"Sec-Fetch-Site": "cross-site"})
        assert error(cross) == (403, "csrf_refused"), path
    nothing_retained(app)


def test_foreign_and_guessed_tokens_learn_nothing(client: FlaskClient, app: Flask) -> None:
    guessed = {"Authorization": f"Bearer {secrets.token_urlsafe(16)}"}
    for path in ("/api/jobs/" + secrets.token_hex(16), "/api/photos/" + secrets.token_hex(16)):
        assert error(lan(client, "GET", path, headers=guessed)) == (403, "token_invalid")
        assert error(lan(client, "GET", path))[0] == 401
        client.set_cookie(SESSION_COOKIE, secrets.token_urlsafe(16), domain="10.77.0.1")
        assert error(lan(client, "GET", path)) == (403, "token_invalid")
        client.delete_cookie(SESSION_COOKIE, domain="10.77.0.1")
    # The LAN cookie means nothing on the kiosk's plain HTTP face.
    client.set_cookie(SESSION_COOKIE, secrets.token_urlsafe(16), domain="127.0.0.1")
    assert error(kiosk(client, "DELETE", "/api/session"))[0] == 401
    nothing_retained(app)


def test_oversized_and_wrong_type_uploads(client: FlaskClient, app: Flask) -> None:
    big = lan(client, "POST", "/api/photos", data=b"x",  # refused on its header, unread
              headers={**CONSENT, "Content-Type": "image/jpeg"},
              environ_overrides={"CONTENT_LENGTH": str(60 << 20)})
    assert error(big) == (413, "too_many_bytes")
    text = lan(client, "POST", "/api/photos", data=b"hello",
               headers={**CONSENT, "Content-Type": "text/plain"})
    assert error(text) == (415, "unsupported_format")
    nothing_retained(app)


def test_uploads_are_rate_limited_per_lan_address_not_at_the_kiosk(client: FlaskClient,
                                                                   app: Flask) -> None:
    bad = {**CONSENT, "Content-Type": "image/jpeg"}
    for _ in range(UPLOADS_PER_MINUTE):
        assert lan(client, "POST", "/api/photos", data=b"not a jpeg",
                   headers=bad).status_code != 429
    limited = lan(client, "POST", "/api/photos", data=b"not a jpeg", headers=bad)
    assert error(limited) == (429, "too_many_uploads")
    assert int(limited.headers["Retry-After"]) >= 1
    other = client.open(LAN_BASE + "/api/photos", method="POST", data=b"x",
                        environ_base={**LAN, "REMOTE_ADDR": "10.77.0.3"},
                        headers={**bad, "Origin": LAN_BASE})
    assert other.status_code != 429  # another phone is not punished
    for _ in range(UPLOADS_PER_MINUTE + 2):
        assert kiosk(client, "POST", "/api/photos", data=b"x", headers=bad).status_code != 429
    nothing_retained(app)


@pytest.mark.needs_models
def test_a_session_cookie_opens_only_its_own_photos(client: FlaskClient, app: Flask) -> None:
    photo = encode(astronaut_bgr(), ".jpg")
    owners = []
    for _ in range(2):
        client.delete_cookie(SESSION_COOKIE, domain="10.77.0.1")
        reply = lan(client, "POST", "/api/photos", data=photo,
                    headers={**CONSENT, "Content-Type": "image/jpeg"})
        assert reply.status_code == 201, reply.get_json()
        assert "session_token" not in reply.get_json()
        cookie = reply.headers["Set-Cookie"]
        owners.append((reply.get_json()["photo_id"], cookie.split(";")[0].split("=", 1)[1]))
    (mine, my_token), (theirs, _their_token) = owners
    client.set_cookie(SESSION_COOKIE, my_token, domain="10.77.0.1")
    assert lan(client, "GET", f"/api/photos/{mine}").status_code == 200
    assert error(lan(client, "GET", f"/api/photos/{theirs}")) == (404, "photo_not_found")
    assert error(lan(client, "DELETE", f"/api/photos/{theirs}")) == (404, "photo_not_found")
    app.extensions["ephemera.jobs"].release_all("test")


def test_links_for_phones_point_at_the_lan_listener(app: Flask) -> None:
    from appliance.web.access import phone_link

    with app.test_request_context("/", base_url=KIOSK_BASE):
        assert phone_link("/take") == "https://10.77.0.1:8443/take"
    plain = create_app(load_config(env={}), jobs=False)
    with plain.test_request_context("/", base_url=KIOSK_BASE):
        assert phone_link("/take") == KIOSK_BASE + "/take"  # the LAN off: as reached
