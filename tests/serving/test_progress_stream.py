"""Progress streams (server-sent events) through the real gunicorn service.

Two hundred screens follow one job at once while the worker has 8 threads: each stream gets its
answer and first event while the job still waits, and a normal request is answered at once, so
no stream holds a thread. Wrong tokens and other sessions' jobs get the status route's JSON
errors; a stream ends with the job's last state, which is exactly what the status route says.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator

import pytest

from appliance.config import Config
from appliance.web.server import gunicorn_options
from tests.helpers import service as svc
from tests.helpers.images import astronaut_bgr, encode
from tests.serving.rawhttp import connect, timed_get

STREAMS = 200


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    with svc.running(tmp_path_factory.mktemp("sse")) as running:
        yield running


def _open_stream(port: int, job_id: str, token: str) -> socket.socket:
    sock = connect(port)
    sock.sendall(f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def _read_head(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever of the stream came with them."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def _events(data: bytes) -> list[tuple[str, dict[str, object]]]:
    found = []
    for block in data.decode().split("\n\n"):
        lines = block.split("\n")
        name = next((x[6:].strip() for x in lines if x.startswith("event:")), "")
        payload = "".join(x[5:] for x in lines if x.startswith("data:"))
        if payload:
            found.append((name, json.loads(payload)))
    return found


def _read_first_event(sock: socket.socket, rest: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = rest
    while b"data:" not in data or not data.rstrip(b" ").endswith(b"\n\n"):
        chunk = sock.recv(65536)
        assert chunk, "closed before the first event"
        data += chunk
    return data


def _read_to_close(sock: socket.socket, data: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _headshot_job(service: svc.Service) -> tuple[str, str]:
    photo = encode(astronaut_bgr(), ".jpg")
    _photo, job_id, token = service.photo_job(photo, "image/jpeg", effect="headshot")
    return job_id, token


def test_many_streams_hold_no_thread_and_end_with_the_status(service: svc.Service) -> None:
    assert gunicorn_options(Config())["threads"] * 10 < STREAMS
    ahead = _headshot_job(service)  # runs first: the followed job waits behind it
    job_id, token = _headshot_job(service)
    socks = [_open_stream(service.port, job_id, token) for _ in range(STREAMS)]
    try:
        firsts = []
        for sock in socks:
            status, headers, rest = _read_head(sock, timeout=10)
            assert status == 200
            assert headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-store"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            firsts.append(_events(_read_first_event(sock, rest, timeout=10)))
        # Every stream is open and has its first event while the job has not ended: with a
        # thread per stream only 8 could have got this far.
        assert all(events and events[0][1]["state"] in ("queued", "running")
                   for events in firsts)
        polled = service.get(f"/api/jobs/{job_id}", token).json()
        assert polled["state"] in ("queued", "running"), "the job ended too soon to prove it"
        assert timed_get(service.port, "/healthz", timeout=5) < 1.0
        assert timed_get(service.port, "/api/effects", timeout=5) < 1.0
        queued = [events[0][1] for events in firsts if events[0][1]["state"] == "queued"]
        assert all(body["queue_position"] == 1 for body in queued)
        ends = [_events(_read_to_close(sock, b"", timeout=120)) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    final = service.get(f"/api/jobs/{job_id}", token).json()
    assert final["state"] == "done"
    for first, rest in zip(firsts, ends, strict=True):
        last = (first + rest)[-1]
        assert last == ("", final)  # exactly the status route's JSON, then the end
    assert service.wait_for_job(ahead[0], ahead[1])["state"] == "done"


def test_stream_refusals_are_the_status_routes_json(service: svc.Service) -> None:
    job_id, token = _headshot_job(service)
    _other_photo, other_job, _other_token = service.photo_job(
        encode(astronaut_bgr(), ".jpg"), "image/jpeg")
    cases = [
        (f"/api/jobs/{job_id}/events", None, 401, "token_required"),
        (f"/api/jobs/{job_id}/events", secrets.token_urlsafe(32), 403, "token_invalid"),
        (f"/api/jobs/{other_job}/events", token, 404, "job_not_found"),
        (f"/api/jobs/{'0' * 32}/events", token, 404, "job_not_found"),
    ]
    for path, sent, status, code in cases:
        reply = service.get(path, sent)
        assert reply.status == status, (path, reply.body)
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["error"] == code and reply.json()["remedy"]
        assert reply.headers["cache-control"] == "no-store"
    service.wait_for_job(job_id, token)


def test_a_deleted_job_ends_its_stream_with_gone(service: svc.Service) -> None:
    job_id, token = _headshot_job(service)
    sock = _open_stream(service.port, job_id, token)
    try:
        status, _headers, rest = _read_head(sock, timeout=10)
        assert status == 200
        first = _read_first_event(sock, rest, timeout=10)
        assert service.delete(f"/api/jobs/{job_id}", token).status in (200, 202)
        started = time.monotonic()
        events = _events(_read_to_close(sock, first, timeout=30))
        assert time.monotonic() - started < 30
    finally:
        sock.close()
    assert events[-1][0] == "gone" and events[-1][1]["error"] == "job_not_found"


def test_a_stream_for_an_ended_job_sends_its_state_and_closes(service: svc.Service) -> None:
    job_id, token = _headshot_job(service)
    final = service.wait_for_job(job_id, token)
    sock = _open_stream(service.port, job_id, token)
    try:
        status, _headers, rest = _read_head(sock, timeout=10)
        events = _events(_read_to_close(sock, rest, timeout=10))
    finally:
        sock.close()
    assert status == 200 and events == [("", final)]
