"""kill -9 of the gunicorn worker: the arbiter starts a new one, and that new worker sweeps the
dead one's blobs before it serves anything (not only a full restart does)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import service as svc
from tests.helpers.images import astronaut_bgr, encode

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def worker_pids(arbiter: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{arbiter}/task").iterdir():
        children = (task / "children").read_text().split()
        pids.extend(int(pid) for pid in children)
    return pids


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_new_worker_sweeps_a_killed_workers_blobs(tmp_path: Path) -> None:
    with svc.running(tmp_path) as service:
        # `appliance serve` re-execs itself with the malloc settings: the arbiter is that pid.
        wait_for(lambda: len(worker_pids(service.pid)) == 1)
        (old_worker,) = worker_pids(service.pid)
        _photo, job, token = service.photo_job(encode(astronaut_bgr(), ".jpg"), "image/jpeg")
        assert service.wait_for_job(job, token)["state"] == "done"
        assert service.store_files(), "the result should be in the store"

        os.kill(old_worker, signal.SIGKILL)
        wait_for(lambda: worker_pids(service.pid) not in ([], [old_worker]))
        wait_for(lambda: service.get("/healthz").status == 200)
        assert service.store_files() == []
        assert service.get(f"/api/jobs/{job}", token).status == 403
