"""Who may reach what: the kiosk's routes, the phones' routes, CSRF, cookies, rate limits.

Why one place: the same Flask app answers the kiosk (plain HTTP on loopback) and guests'
phones (TLS on the LAN listener), so every rule that depends on which face a request came in
on is decided here, before any handler runs, from facts a client cannot forge: the listener's
socket (TLS or not) and the peer address.

- Route classes, by URL prefix (so they hold whichever screens are installed): kiosk routes
  and the admin-on-kiosk only over loopback; phone routes only over the LAN (while the LAN is
  enabled; without it, the kiosk's own browser may preview them); the API, static files, the
  admin page and ``/healthz`` on both.
- Host: only the booth's own names (a DNS-rebinding page on another name gets 421).
- CSRF: every state change (POST, PUT, PATCH, DELETE) must come from the booth's own origin:
  a cross-site ``Sec-Fetch-Site`` or a foreign ``Origin`` is refused everywhere; on the LAN the
  ``Origin`` is required (browsers always send it with such requests).
- Session token on the LAN: moved out of JSON answers into an ``HttpOnly; Secure;
  SameSite=Strict`` ``__Host-`` cookie, which the API accepts like a bearer token.
- HSTS on TLS.
- Rate limits per LAN address: uploads and failed token attempts (429 with Retry-After).
  The kiosk (loopback) has no per-address limits.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g, redirect, request

from appliance.audit import audit
from appliance.config import Config, ConfigError
from appliance.errors import UserFacingError
from appliance.web.guarded_worker import is_kiosk
from appliance.web.rate_limit import SlidingWindow

SESSION_COOKIE = "__Host-ephemera-session"
LAN_ENVIRON = "ephemera.lan"
HSTS = "max-age=63072000"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KIOSK_PREFIXES = ("/kiosk", "/ui/handoff")  # and "/" itself
KIOSK_EXACT = frozenset({"/"})
PHONE_PREFIXES = ("/phone", "/take", "/ui/handoff/join", "/ui/handoff/deliver")
TOKEN_FAILURES = frozenset({"token_invalid", "job_not_found", "photo_not_found",
                            "output_not_found"})
UPLOADS_PER_MINUTE = 20
TOKEN_FAILURES_PER_MINUTE = 20


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def route_class(path: str) -> str:
    """"phone", "kiosk" or "shared" (phone prefixes first: /ui/handoff/join is a phone's)."""
    if _under(path, PHONE_PREFIXES):
        return "phone"
    if path in KIOSK_EXACT or _under(path, KIOSK_PREFIXES):
        return "kiosk"
    return "shared"


class LanMarker:
    """WSGI middleware: mark requests that came in over the TLS listener as LAN and https.

    gunicorn only knows its own TLS, so it reports ``http`` for every request; the socket
    says the truth. Clients cannot set environ keys, only ``HTTP_*`` ones."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if isinstance(environ.get("gunicorn.socket"), ssl.SSLSocket):
            environ[LAN_ENVIRON] = True
            environ["wsgi.url_scheme"] = "https"
        else:
            environ.setdefault(LAN_ENVIRON, False)
        return self.app(environ, start_response)


def on_lan() -> bool:
    return bool(request.environ.get(LAN_ENVIRON))


def _refuse(code: str, message: str, remedy: str, status: int = 403) -> UserFacingError:
    audit("request_refused", reason=code)
    return UserFacingError(code, message, status=status, remedy=remedy)


def booth_hosts(cfg: Config) -> tuple[set[str], set[str]]:
    """(kiosk hosts, LAN hosts) a Host header may name, with and without the port."""
    kiosk = {"127.0.0.1", "localhost", "[::1]"}
    kiosk |= {f"{h}:{cfg.kiosk.port}" for h in list(kiosk)}
    lan: set[str] = set()
    if cfg.lan.enabled:
        from appliance.web.lan_tls import lan_address, local_name

        names = {local_name()}
        if cfg.lan.address:
            names.add(cfg.lan.address)
        with contextlib.suppress(ConfigError, OSError):
            names.add(lan_address(cfg))
        lan = {f"{n}:{cfg.lan.port}" for n in names}
        if cfg.lan.port == 443:
            lan |= names
    return kiosk, lan


def _phone_origin(cfg: Config) -> str | None:
    """Where phones reach the booth (https://<LAN address>:<port>), None with the LAN off."""
    if not cfg.lan.enabled:
        return None
    from appliance.web.lan_tls import lan_address

    try:
        address = lan_address(cfg)
    except (ConfigError, OSError):
        return None
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}" + ("" if cfg.lan.port == 443 else f":{cfg.lan.port}")


def phone_link(path: str) -> str:
    """A link for a guest's phone (a QR code): the LAN listener when it is on, else the
    address this request came in on."""
    from flask import current_app

    policy = current_app.extensions.get("ephemera.access")
    origin = getattr(policy, "phone_origin", None) or request.host_url.rstrip("/")
    return origin + path


class AccessPolicy:
    """The rules above, installed as before/after-request hooks on one app."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.kiosk_hosts, self.lan_hosts = booth_hosts(cfg)
        self.phone_origin = _phone_origin(cfg)
        self.uploads = SlidingWindow(UPLOADS_PER_MINUTE, 60.0)
        self.token_failures = SlidingWindow(TOKEN_FAILURES_PER_MINUTE, 60.0)

    # -- before ------------------------------------------------------------------------------

    def check(self) -> Any:
        lan = on_lan()
        path = request.path
        address = request.remote_addr or ""
        if not lan and not is_kiosk(address):
            raise _refuse("tls_required", "Phones reach the booth over HTTPS only.",
                          "Open the booth's https:// address from its QR code.")
        self._check_host(lan)
        kind = route_class(path)
        if lan and kind == "kiosk":
            if path == "/" and request.method in ("GET", "HEAD"):
                return redirect("/phone", code=303)
            raise _refuse("kiosk_only", "This page is only on the booth's own screen.",
                          "Use the page the booth's QR code opens.")
        if not lan and kind == "phone" and self.cfg.lan.enabled:
            raise _refuse("phone_only", "This page is for guests' phones.",
                          "Open it from a phone on the booth's network.")
        if request.method in STATE_CHANGING:
            self._check_origin(lan)
        if lan:
            self._check_rates(address, path)
        return None

    def _check_host(self, lan: bool) -> None:
        host = (request.host or "").lower()
        allowed = self.lan_hosts if lan else self.kiosk_hosts
        if host not in allowed:
            raise _refuse("wrong_host", "This address is not the booth's.",
                          "Open the booth's own address from its QR code.", status=421)

    def _check_origin(self, lan: bool) -> None:
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise _refuse("csrf_refused", "This request came from another site.",
                          "Use the booth's own page.")
        origin = request.headers.get("Origin")
        expected = f"{'https' if lan else 'http'}://{(request.host or '').lower()}"
        if origin is None:
            if lan:
                raise _refuse("origin_required", "This request does not say where it came "
                              "from.", "Use the booth's own page in a current browser.")
            return  # the kiosk's own tools (loopback only); a browser always sends Origin
        if origin.lower() != expected:
            raise _refuse("csrf_refused", "This request came from another site.",
                          "Use the booth's own page.")

    def _check_rates(self, address: str, path: str) -> None:
        wait = self.token_failures.blocked(address)
        if wait is not None and self._presents_token():
            raise UserFacingError("too_many_attempts", "Too many wrong or expired links from "
                                  "this device.", status=429, retry_after_s=wait,
                                  remedy=f"Wait {wait} seconds, then scan the QR code again.")
        if request.method == "POST" and path == "/api/photos":
            wait = self.uploads.hit(address)
            if wait is not None:
                raise UserFacingError("too_many_uploads", "This device has sent many photos "
                                      "in a short time.", status=429, retry_after_s=wait,
                                      remedy=f"Wait {wait} seconds before the next photo.")

    @staticmethod
    def _presents_token() -> bool:
        return bool(request.headers.get("Authorization") or request.cookies.get(SESSION_COOKIE)
                    or request.args.get("download"))

    # -- after -------------------------------------------------------------------------------

    def finish(self, response: Any) -> Any:
        if not on_lan():
            return response
        response.headers["Strict-Transport-Security"] = HSTS
        error = getattr(g, "ephemera_error_code", None)
        if error in TOKEN_FAILURES and self._presents_token():
            self.token_failures.hit(request.remote_addr or "")
        self._token_into_cookie(response)
        return response

    @staticmethod
    def _token_into_cookie(response: Any) -> None:
        """A new session's token goes into an HttpOnly cookie, never into the page's JS."""
        if response.mimetype != "application/json" or response.direct_passthrough:
            return
        body = response.get_json(silent=True)
        if not isinstance(body, dict) or "session_token" not in body:
            return
        token = body.pop("session_token")
        response.set_data(_dumps(body))
        response.set_cookie(SESSION_COOKIE, token, httponly=True, secure=True,
                            samesite="Strict", path="/")


def _dumps(body: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(body) + "\n").encode()


def session_token_from_cookie() -> str | None:
    """The LAN session cookie (only over TLS: the kiosk's plain HTTP never reads it)."""
    return request.cookies.get(SESSION_COOKIE) if on_lan() else None


def request_session_token() -> str | None:
    """The session token of this request: ``Authorization: Bearer <token>`` (the kiosk, the
    command line) or, for phones on the LAN, the HttpOnly session cookie."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return session_token_from_cookie()


def install_access_policy(app: Flask, cfg: Config) -> AccessPolicy:
    policy = AccessPolicy(cfg)
    app.wsgi_app = LanMarker(app.wsgi_app)  # type: ignore[method-assign]
    app.before_request(policy.check)
    app.after_request(policy.finish)
    app.extensions["ephemera.access"] = policy
    return policy
