"""sd_notify and the watchdog: READY only from the process that owns the models, once they are
open; WATCHDOG only while its job thread lives; a no-op outside systemd."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.service.monitor import ServiceMonitor, status_line
from appliance.service.notify import Notifier
from tests.helpers import service as svc
from tests.service.notify_listener import NotifyListener


@pytest.fixture
def listener(tmp_path: Path) -> Any:
    sock = NotifyListener(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_take_from_environment_hides_the_socket_from_the_arbiter(listener: NotifyListener
                                                                 ) -> None:
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "4000000"}
    notifier = Notifier.take_from_environment(env)
    assert "NOTIFY_SOCKET" not in env
    assert notifier.enabled and notifier.watchdog_interval_s == 2.0
    assert notifier.ready("ready: 0 jobs queued, 0 running")
    listener.collect(time.monotonic() + 1)
    assert listener.messages[0].fields == {"READY": "1",
                                           "STATUS": "ready: 0 jobs queued, 0 running"}
    assert listener.messages[0].pid == os.getpid()


def test_outside_systemd_every_call_is_a_no_op() -> None:
    notifier = Notifier.take_from_environment({})
    assert not notifier.enabled and notifier.watchdog_interval_s is None
    assert notifier.ready("x") is False and notifier.watchdog() is False


def test_status_line_counts_only() -> None:
    assert status_line({"states": {"queued": 3, "running": 1, "done": 7}}) == (
        "ready: 3 jobs queued, 1 running")
    assert status_line({"states": {"queued": 1}}) == "ready: 1 job queued, 0 running"


class FakeJobs:
    def __init__(self) -> None:
        self.alive = True

    def worker_alive(self) -> bool:
        return self.alive

    def stats(self) -> dict[str, Any]:
        return {"states": {"queued": 2}}


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            self.sent.append(message)


def test_monitor_pings_while_the_job_worker_lives_and_stops_after() -> None:
    sent = Recorder()
    jobs = FakeJobs()
    loaded = threading.Event()

    def load() -> list[str]:
        assert not any("READY=1" in m for m in sent.sent)  # READY comes after loading
        loaded.set()
        return ["a", "b"]

    monitor = ServiceMonitor(Notifier("@x", sender=sent), jobs, load, interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while sum("WATCHDOG=1" in m for m in sent.sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert loaded.is_set() and monitor.healthy()
        assert sent.sent[0] == "STATUS=preparing: opening the models"
        assert sent.sent[1] == "READY=1\nSTATUS=ready: 2 jobs queued, 0 running"
        assert sum("WATCHDOG=1" in m for m in sent.sent) >= 3
        jobs.alive = False
        time.sleep(0.3)
        count = sum("WATCHDOG=1" in m for m in sent.sent)
        time.sleep(0.3)
        assert sum("WATCHDOG=1" in m for m in sent.sent) == count
        assert sent.sent[-1].startswith("STATUS=unhealthy: the job worker stopped")
    finally:
        monitor.stop()


def test_monitor_never_says_ready_when_models_fail_to_open() -> None:
    sent = Recorder()

    def load() -> list[str]:
        raise FileNotFoundError("face_detection_short.onnx")

    monitor = ServiceMonitor(Notifier("@x", sender=sent), FakeJobs(), load,
                             interval_s=0.05).start()
    time.sleep(0.4)
    monitor.stop()
    assert not any("READY=1" in m or "WATCHDOG=1" in m for m in sent.sent)
    assert "models failed to open (FileNotFoundError)" in sent.sent[-1]


@pytest.mark.slow
@pytest.mark.needs_models
def test_real_service_ready_and_watchdog_come_from_the_worker(tmp_path: Path,
                                                              listener: NotifyListener) -> None:
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}
    with svc.running(tmp_path, env=env) as service:
        ready = listener.wait_for("READY", "1", timeout=120)
        listener.collect(time.monotonic() + 2.5)
        arbiter = service.pid
        worker_pids = {int(p) for p in Path(f"/proc/{arbiter}/task/{arbiter}/children")
                       .read_text().split()}
        assert ready.pid in worker_pids, (ready.pid, arbiter, worker_pids)
        pings = [m for m in listener.messages if m.fields.get("WATCHDOG") == "1"]
        assert len(pings) >= 3 and {m.pid for m in pings} == {ready.pid}
        assert all(m.at > ready.at for m in pings)
        assert ready.fields["STATUS"] == "ready: 0 jobs queued, 0 running"
        preparing = listener.messages[0]
        assert preparing.fields == {"STATUS": "preparing: opening the models"}
        # gunicorn's arbiter never spoke: it would have said READY before any model was open.
        assert not any(m.pid == arbiter for m in listener.messages)
        assert not any("Gunicorn" in m.fields.get("STATUS", "") for m in listener.messages)
        svc.stop(service)
        listener.collect(time.monotonic() + 1)
        assert any(m.fields.get("STOPPING") == "1" for m in listener.messages)


def test_protocol_by_hand_reaches_an_abstract_socket() -> None:
    """Without systemd-python the datagram is sent by hand; '@' names an abstract socket."""
    import secrets
    import socket

    from appliance.service.notify import _send_datagram

    name = f"ephemera-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        notifier = Notifier("@" + name, sender=lambda m: _send_datagram("@" + name, m))
        assert notifier.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
