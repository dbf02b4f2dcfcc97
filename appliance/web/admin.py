"""The operator's page, ``/admin``: behind the PIN, on the kiosk and over TLS on the LAN.

Why plain HTML forms and no script: the page changes little (it is reloaded to refresh), and
with no script at all its Content-Security-Policy can forbid every script, so nothing injected
could run with an operator's session. State changes are POST forms checked by the access
policy's Origin rule like every other state change; the session cookie is ``HttpOnly;
SameSite=Strict`` (and ``Secure``, ``__Host-`` on the LAN) and expires 10 minutes after login.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)

from appliance.audit import audit, recent
from appliance.errors import UserFacingError
from appliance.web.access import on_lan
from appliance.web.admin_auth import PinGuard
from appliance.web.admin_status import self_test, status

admin = Blueprint("admin", __name__, url_prefix="/admin")
ADMIN_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
             "frame-ancestors 'none'; base-uri 'none'")
AUDIT_ROWS = 100


def _guard() -> PinGuard:
    guard: PinGuard = current_app.extensions["ephemera.admin"]
    return guard


def _cookie_name() -> str:
    return "__Host-ephemera-admin" if on_lan() else "ephemera-admin"


def _session() -> str | None:
    return request.cookies.get(_cookie_name())


def _wants_html() -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _require_session() -> None:
    if not _guard().check(_session()):
        raise UserFacingError("admin_login_required", "The admin session is missing or has "
                              "expired.", status=401, remedy="Open /admin and enter the PIN.")


def _page(template: str, status_code: int = 200, **context: Any) -> Response:
    response = make_response(render_template(template, **context), status_code)
    response.headers["Content-Security-Policy"] = ADMIN_CSP
    return response


@admin.get("")
@admin.get("/")
def dashboard() -> Any:
    if not _guard().check(_session()):
        return _page("admin_login.html", enabled=_guard().enabled)
    cfg = current_app.config["EPHEMERA"]
    return _page("admin.html", status=status(current_app.extensions,
                                              cfg.retention.hard_cap_minutes),
                 events=list(reversed(recent(AUDIT_ROWS))), tests=None)


@admin.post("/login")
def login() -> Any:
    pin = request.form.get("pin", "")
    try:
        token = _guard().login(request.remote_addr or "", pin)
    except UserFacingError as exc:
        audit("admin_login_refused", reason=exc.code)
        if not _wants_html():
            raise
        page = _page("admin_login.html", exc.status, enabled=_guard().enabled,
                     error=exc.message, remedy=exc.remedy)
        if exc.retry_after_s is not None:
            page.headers["Retry-After"] = str(exc.retry_after_s)
        return page
    audit("admin_login")
    response = redirect("/admin", code=303)
    response.set_cookie(_cookie_name(), token, httponly=True, secure=on_lan(),
                        samesite="Strict", path="/", max_age=int(_guard().session_s))
    return response


@admin.post("/logout")
def logout() -> Any:
    _guard().logout(_session())
    response = redirect("/admin", code=303)
    response.delete_cookie(_cookie_name(), path="/", secure=on_lan(), samesite="Strict")
    return response


@admin.get("/status.json")
def status_json() -> Any:
    _require_session()
    cfg = current_app.config["EPHEMERA"]
    return jsonify(status(current_app.extensions, cfg.retention.hard_cap_minutes))


@admin.post("/purge")
def purge() -> Any:
    """Everything of every guest, now: jobs, photos, their keys and stored blobs."""
    _require_session()
    manager = current_app.extensions["ephemera.jobs"]
    released = manager.release_all("purged")
    audit("store_purged", jobs=released, by="admin")
    return redirect("/admin", code=303)


@admin.post("/retention")
def retention() -> Any:
    _require_session()
    cap = current_app.config["EPHEMERA"].retention.hard_cap_minutes
    raw = request.form.get("minutes", "")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= cap:
        raise UserFacingError("bad_retention", f"Retention must be 1 to {cap} minutes.",
                              status=400, remedy=f"Enter a whole number from 1 to {cap}.")
    current_app.extensions["ephemera.jobs"].default_retention_minutes = int(raw)
    audit("retention_changed", minutes=int(raw), by="admin")
    return redirect("/admin", code=303)


@admin.post("/self-test")
def run_self_test() -> Any:
    _require_session()
    results = self_test(current_app.extensions)
    audit("self_test", effects=len(results), failed=sum(1 for r in results if not r["ok"]))
    cfg = current_app.config["EPHEMERA"]
    return _page("admin.html", status=status(current_app.extensions,
                                              cfg.retention.hard_cap_minutes),
                 events=list(reversed(recent(AUDIT_ROWS))), tests=results)


def install_admin(app: Any, cfg: Any) -> None:
    app.extensions["ephemera.admin"] = PinGuard(cfg.admin.pin_hash)
    if "ephemera.jobs" in app.extensions:
        app.register_blueprint(admin)
