"""The progress hub on its own: limits per address and in total, slow readers dropped, a stream
ended at the job's last state, heartbeats while nothing changes (socket pairs, no server)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from appliance.errors import UserFacingError
from appliance.jobs.job import Job, JobState
from appliance.web.progress_hub import HEARTBEAT, ProgressHub, StreamLimits


def _job() -> Job:
    return Job(id="a" * 32, session_id="s", kind="faces", created_at=0.0, expires_at=1e12)


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_streams_are_capped_per_address_and_in_total() -> None:
    hub = ProgressHub(StreamLimits(max_total=5, max_per_address=2))
    tickets = [hub.reserve("10.0.0.2", kiosk=False) for _ in range(2)]
    with pytest.raises(UserFacingError) as refused:
        hub.reserve("10.0.0.2", kiosk=False)
    assert refused.value.status == 429 and refused.value.code == "too_many_streams"
    assert refused.value.retry_after_s
    tickets += [hub.reserve("127.0.0.1", kiosk=True) for _ in range(3)]  # not per address
    with pytest.raises(UserFacingError) as busy:
        hub.reserve("10.0.0.3", kiosk=False)
    assert busy.value.status == 503 and busy.value.code == "busy"
    hub.give_back(tickets[0])
    hub.reserve("10.0.0.2", kiosk=False)  # a place given back is free again
    assert hub.count() == 5


def test_a_reader_that_stops_reading_is_dropped() -> None:
    hub = ProgressHub(StreamLimits(max_buffered_bytes=8 << 10, stall_timeout_s=0.5,
                                   min_interval_s=0.0))
    job = _job()
    server, client = socket.socketpair()
    for sock in (server, client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    counter = iter(range(1_000_000))
    try:
        hub.adopt(hub.reserve("10.0.0.2", kiosk=False), server, b"HTTP/1.1 200 OK\r\n\r\n",
                  job, lambda _job: {"n": next(counter), "pad": "x" * 2000})
        deadline = time.monotonic() + 10
        while hub.count() and time.monotonic() < deadline:
            hub.wake(job.id)  # every wake-up renders a new status the client never reads
            time.sleep(0.01)
        assert hub.count() == 0 and hub.dropped_slow == 1
    finally:
        hub.close()
        client.close()


def test_a_stream_ends_after_the_jobs_last_state_and_beats_meanwhile() -> None:
    hub = ProgressHub(StreamLimits(heartbeat_s=0.2, min_interval_s=0.0))
    job = _job()
    server, client = socket.socketpair()
    client.settimeout(5)
    try:
        hub.adopt(hub.reserve("127.0.0.1", kiosk=True), server, b"HEAD\r\n\r\n", job,
                  lambda j: {"state": j.state.value, "progress": j.progress})
        received = b""
        while received.count(HEARTBEAT) < 2:
            received += client.recv(4096)
        assert received.count(b"data:") == 1  # nothing changed: heartbeats only
        job.on_change = hub.wake
        job.move_to(JobState.RUNNING)
        job.set_progress("rendering", 0.5)
        job.move_to(JobState.DONE)
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
        assert received.rstrip().endswith(b'"state":"done","progress":0.5}')
        _until(lambda: hub.count() == 0)
    finally:
        hub.close()
        client.close()


def test_a_released_job_ends_with_gone() -> None:
    hub = ProgressHub(StreamLimits(min_interval_s=0.0))
    job = _job()
    server, client = socket.socketpair()
    client.settimeout(5)
    try:
        hub.adopt(hub.reserve("127.0.0.1", kiosk=True), server, b"", job,
                  lambda j: {"state": j.state.value})
        job.state = JobState.RELEASED
        hub.wake(job.id)
        received = b""
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            received += chunk
        assert b"event: gone\ndata: {\"error\":\"job_not_found\"" in received
    finally:
        hub.close()
        client.close()


def test_without_the_booths_worker_the_stream_sends_the_status_once(ram_dir: Any) -> None:
    """The Flask test client cannot hand a connection over: one event (the status route's
    JSON), the end, and the stream's place given back."""
    from appliance.config import load_config
    from appliance.web.app import create_app, shutdown_app

    app = create_app(load_config(env={"EPHEMERA_STORE_PATH": str(ram_dir / "store")}))
    try:
        job, token = app.extensions["ephemera.jobs"].create_job(None, "faces")
        client = app.test_client()
        auth = {"Authorization": f"Bearer {token}"}
        stream = client.get(f"/api/jobs/{job.id}/events", headers=auth,
                            environ_base={"REMOTE_ADDR": "127.0.0.1"})
        status = client.get(f"/api/jobs/{job.id}", headers=auth,
                            environ_base={"REMOTE_ADDR": "127.0.0.1"})
        assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
        assert stream.headers["Cache-Control"] == "no-store"
        blocks = [b for b in stream.get_data(as_text=True).split("\n\n") if b]
        assert blocks[0] == "retry: 2000"
        assert blocks[1].startswith("data: ") and len(blocks) == 2
        import json

        assert json.loads(blocks[1][6:]) == status.get_json()
        assert app.extensions["ephemera.progress"].count() == 0
    finally:
        shutdown_app(app)
