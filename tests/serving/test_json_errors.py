"""Requests gunicorn itself refuses (bad framing, bad method, long URL, many or big headers)
get the booth's JSON error shape, through the real service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import service as svc
from tests.serving.rawhttp import exchange


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    with svc.running(tmp_path_factory.mktemp("errors")) as running:
        yield running


POST = b"POST /api/photos HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
CASES = {
    "bad Content-Length": (POST + b"Content-Length: 12abc\r\n\r\nhello", 400),
    "two Content-Lengths": (POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                            400),
    "Transfer-Encoding with Content-Length": (
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    "two Hosts": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    "lower-case method": (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "100 KB URL": (b"GET /healthz?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "1000 headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                     + b"".join(b"X-H%d: v\r\n" % i for i in range(1000)) + b"\r\n", 431),
    "9 KB header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000
                    + b"\r\n\r\n", 431),
}


@pytest.mark.parametrize("name", list(CASES))
def test_refusals_are_json(service: svc.Service, name: str) -> None:
    raw, status = CASES[name]
    got, headers, body = exchange(service.port, raw, timeout=15)
    assert got == status, (name, got, body)
    assert headers["content-type"] == "application/json", headers
    assert set(body) >= {"error", "message", "remedy"}, body
    assert headers["cache-control"] == "no-store"
