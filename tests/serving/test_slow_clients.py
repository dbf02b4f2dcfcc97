"""Slow and stalled clients through the real gunicorn service: heads that trickle, bodies that
stop, bodies that crawl. None of them may keep /healthz or an upload waiting, and each is
dropped with a JSON 408 within the documented deadlines (docs/SERVING.md)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from appliance.web.guarded_worker import LIMITS
from tests.helpers import service as svc
from tests.helpers.images import astronaut_bgr, encode
from tests.serving.rawhttp import connect, read_answer, timed_get

SLOW = 8  # twice gunicorn's thread count: on the old server this took the booth offline


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    with svc.running(tmp_path_factory.mktemp("slow")) as running:
        yield running


def _trickle_heads(port: int, stop: threading.Event, socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    line = 0
    while not stop.wait(1.0):
        line += 1
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(f"X-Slow-{line}: {line}\r\n".encode())


def test_trickling_heads_neither_block_others_nor_stay(service: svc.Service) -> None:
    socks = [connect(service.port) for _ in range(SLOW)]
    stop = threading.Event()
    feeder = threading.Thread(target=_trickle_heads, args=(service.port, stop, socks))
    feeder.start()
    try:
        time.sleep(1.5)
        for _ in range(5):
            assert timed_get(service.port, "/healthz", timeout=3) < 2.0
        reply = service.upload(encode(astronaut_bgr(), ".jpg"), "image/jpeg")
        assert reply.status == 201, reply.body
        # Past the head deadline every trickling client has had its 408 and is closed.
        started = time.monotonic()
        for sock in socks:
            status, headers, body = read_answer(sock, timeout=LIMITS.head_timeout_s + 5)
            assert status == 408 and b"request_timeout" in body
            assert headers["content-type"] == "application/json"
        assert time.monotonic() - started < LIMITS.head_timeout_s + 3
    finally:
        stop.set()
        feeder.join()
        for sock in socks:
            sock.close()


def _start_body(port: int, length: int, first: bytes) -> socket.socket:
    sock = connect(port)
    sock.sendall(f"POST /api/photos HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                 f"X-Ephemera-Consent: adults-consenting\r\nContent-Length: {length}\r\n\r\n"
                 .encode() + first)
    return sock


def test_stalled_and_crawling_bodies_are_dropped(service: svc.Service) -> None:
    photo = encode(astronaut_bgr(), ".jpg")
    stalled = [_start_body(service.port, 68052, photo[:1000]) for _ in range(SLOW)]
    crawling = [_start_body(service.port, 68052, photo[:100]) for _ in range(SLOW)]
    try:
        started = time.monotonic()
        time.sleep(1.0)
        for _ in range(5):
            assert timed_get(service.port, "/healthz", timeout=3) < 2.0
        reply = service.upload(photo, "image/jpeg")
        assert reply.status == 201, reply.body
        sent = 100
        # Crawl at 50 bytes a second: far under the minimum rate.
        while time.monotonic() - started < LIMITS.body_grace_s + 2:
            for sock in crawling:
                with contextlib.suppress(OSError):
                    sock.sendall(photo[sent:sent + 50])
            sent += 50
            time.sleep(1.0)
        for sock in crawling:
            status, _headers, body = read_answer(sock, timeout=5)
            assert status == 408 and b"request_timeout" in body
        for sock in stalled:
            status, _headers, body = read_answer(sock, timeout=LIMITS.idle_timeout_s + 5)
            assert status == 408 and b"request_timeout" in body
        assert time.monotonic() - started < LIMITS.idle_timeout_s + 5
    finally:
        for sock in stalled + crawling:
            sock.close()


def test_an_upload_whose_client_left_leaves_no_job(service: svc.Service) -> None:
    """Half a photo then a close: nothing is processed, no blob or job is left behind."""
    photo = encode(astronaut_bgr(), ".jpg")
    before = len(service.store_files())
    sock = _start_body(service.port, len(photo), photo[: len(photo) // 2])
    sock.close()
    time.sleep(1.0)
    assert len(service.store_files()) == before
    assert timed_get(service.port, "/healthz", timeout=3) < 2.0


def test_an_upload_whose_client_left_after_sending_it_is_dropped(service: svc.Service) -> None:
    """The whole photo, then a close before the answer: no job runs, no blob stays."""
    photo = encode(astronaut_bgr(), ".jpg")
    before = len(service.store_files())
    sock = _start_body(service.port, len(photo), photo)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    time.sleep(6.0)  # long enough for the job to have run and stored its result
    assert len(service.store_files()) == before


def test_a_connected_clients_upload_is_answered_at_once(service: svc.Service) -> None:
    """The check for a departed client must not wait on a client that is still there."""
    started = time.monotonic()
    reply = service.upload(encode(astronaut_bgr(), ".jpg"), "image/jpeg")
    assert reply.status == 201, reply.body
    assert time.monotonic() - started < 5.0
