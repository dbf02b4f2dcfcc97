"""Every answer of the real service (gunicorn) carries the security headers and no-store, and
/healthz says "ok" and nothing about the version or mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import service as svc

EXPECTED = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "permissions-policy": "microphone=()",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    with svc.running(tmp_path_factory.mktemp("headers")) as running:
        yield running


@pytest.mark.parametrize("method,path,body,headers", [
    ("GET", "/", None, {}),
    ("GET", "/healthz", None, {}),
    ("GET", "/api/nothing", None, {}),
    ("POST", "/api/photos", b"x", {"Content-Type": "image/png"}),
    ("GET", "/api/jobs/0123", None, {"Authorization": "Bearer forged"}),
])
def test_every_answer_has_the_security_headers(service: svc.Service, method: str, path: str,
                                               body: bytes | None,
                                               headers: dict[str, str]) -> None:
    reply = service.request(method, path, body, headers)
    for name, part in EXPECTED.items():
        assert part in reply.headers.get(name, ""), (path, name, reply.headers)


def test_healthz_tells_nothing_but_ok(service: svc.Service) -> None:
    reply = service.get("/healthz")
    assert reply.status == 200 and reply.json() == {"status": "ok"}
