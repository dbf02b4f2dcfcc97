"""Numeric parameters: ASCII digits only, a 400 naming the parameter otherwise, never a 5xx."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.numbers import parse_ascii_int
from appliance.web.app import create_app, shutdown_app

CONSENT = {"X-Ephemera-Consent": "adults-consenting"}
NOT_ASCII_DIGITS = ["²", "¹", "①", "٣", "۳", "३", "\uff13", "1²", " 1", "1 ", "+1", "-1", "1_0",
                    "0x1", "1.0", "", "١٢", "\U0001d7cf"]


@pytest.mark.parametrize("raw", NOT_ASCII_DIGITS)
def test_only_ascii_digits_are_numbers(raw: str) -> None:
    with pytest.raises(UserFacingError) as caught:
        parse_ascii_int(raw, "faces", 1, 2)
    assert caught.value.status == 400
    assert caught.value.code == "bad_faces"
    assert "faces" in caught.value.message and "1 to 2" in caught.value.message


def test_in_range_ascii_digits_and_ints_pass() -> None:
    assert parse_ascii_int("2", "faces", 1, 2) == 2
    assert parse_ascii_int("0001", "faces", 1, 2) == 1
    assert parse_ascii_int(2, "faces", 1, 2) == 2
    for bad in (True, 2.0, None, "3", "0", "9" * 400):
        with pytest.raises(UserFacingError):
            parse_ascii_int(bad, "faces", 1, 2)


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    store = Path("/dev/shm") / f"ephemera-numbers-{secrets.token_hex(6)}"
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(store / "store")})
    application = create_app(cfg)
    yield application
    shutdown_app(application)
    shutil.rmtree(store, ignore_errors=True)


@pytest.mark.parametrize("query", ["faces=%C2%B2", "retention_minutes=%C2%B9",
                                   "faces=%EF%BC%91", "retention_minutes=%D9%A3"])
def test_unicode_digits_are_a_named_400(app: Flask, query: str) -> None:
    reply = app.test_client().post(f"/api/photos?{query}", data=b"\xff\xd8\xff",
                                   headers={**CONSENT, "Content-Type": "image/jpeg"})
    assert reply.status_code == 400, reply.data
    body = reply.get_json()
    name = query.split("=")[0]
    # An effect's parameters are the registry's ("bad_param"), the route's own "bad_<name>";
    # either way a 400 that names the parameter.
    assert body["error"] in (f"bad_{name}", "bad_param") and name in body["message"]


ROUTES = [("POST", "/api/photos"), ("GET", "/api/photos/0123"), ("DELETE", "/api/photos/0123"),
          ("POST", "/api/jobs"), ("GET", "/api/jobs/0123"),
          ("GET", "/api/jobs/0123/outputs/result.jpg"),
          ("POST", "/api/jobs/0123/download-token"), ("DELETE", "/api/jobs/0123"),
          ("DELETE", "/api/session"), ("GET", "/api/effects"), ("GET", "/healthz"),
          ("GET", "/")]
PARAMS = ["faces", "retention_minutes", "effect", "consent", "download", "output"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), name=st.sampled_from(PARAMS), value=st.text(max_size=12))
def test_no_parameter_value_gives_a_5xx(app: Flask, route: tuple[str, str], name: str,
                                        value: str) -> None:
    method, path = route
    reply = app.test_client().open(
        f"{path}?{name}={quote(value, safe='')}", method=method, data=b"\xff\xd8\xff",
        headers={**CONSENT, "Content-Type": "image/jpeg", "Authorization": "Bearer x"})
    assert reply.status_code < 500, (method, path, name, value, reply.data)
    if reply.status_code >= 400:
        assert set(reply.get_json()) >= {"error", "message"}


@pytest.mark.parametrize("raw", ["²", "\uff13\uff12", "٣"])
def test_config_numbers_are_ascii_digits_too(raw: str) -> None:
    from appliance.config import ConfigError
    with pytest.raises(ConfigError, match="max_jobs"):
        load_config(env={"EPHEMERA_STORE_MAX_JOBS": raw})
    with pytest.raises(ConfigError, match="quota_bytes"):
        load_config(env={"EPHEMERA_STORE_QUOTA_BYTES": raw + "MiB"})
