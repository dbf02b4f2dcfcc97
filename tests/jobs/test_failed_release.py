"""A failed job's buffers are unmapped (not only wiped) when it is deleted, without the
garbage collector: the manager keeps no traceback, so no frame pins a view of the pixels."""

from __future__ import annotations

import gc
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.jobs.job import Job, JobState
from appliance.jobs.manager import JobManager
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY, SecureBuffer
from appliance.secure.store import RamStore

PIXELS = 12_000_000 * 3 // 8  # a few MB is enough to see in the counters


def mappings() -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for _ in maps)


def locked_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def manager() -> Iterator[JobManager]:
    path = Path("/dev/shm") / f"ephemera-failed-{secrets.token_hex(6)}"
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(path / "store")})
    store = RamStore(cfg.store.path, cfg.store.quota_bytes, cfg.store.max_jobs)
    jobs = JobManager(cfg, store, ModelSet(cfg), sweep_interval_s=None)
    yield jobs
    jobs.close()
    shutil.rmtree(path, ignore_errors=True)


def failing_work(kept: list[SecureBuffer], error: Exception):  # type: ignore[no-untyped-def]
    def decode_and_analyse(job: Job) -> None:
        buffer, pixels = REGISTRY.array((PIXELS,), np.uint8, owner=job.id, label="decoded")
        kept.append(buffer)
        pixels[:] = 0xA5  # the guest's photo, as far as this test is concerned
        view = pixels[::2]  # a local view in this frame: what a traceback keeps alive
        assert view.base is not None
        raise error
    return decode_and_analyse


@pytest.mark.parametrize("error", [
    UserFacingError("no_face", "No face was found.", status=422),
    RuntimeError("a bug deep in an effect"),
])
def test_delete_of_a_failed_job_unmaps_its_buffers(manager: JobManager,
                                                   error: Exception) -> None:
    gc.collect()
    gc.disable()  # release must not depend on the cyclic collector
    try:
        before_maps, before_locked = mappings(), locked_kib()
        kept: list[SecureBuffer] = []
        job, _token = manager.create_job(None, "faces")
        manager.enqueue(job, failing_work(kept, error))
        for _ in range(500):
            if job.state is JobState.FAILED:
                break
            threading.Event().wait(0.01)
        assert job.state is JobState.FAILED
        assert job.error is not None and job.error.__traceback__ is None
        assert manager.release_job(job.id, "deleted")
        buffer = kept.pop()
        assert buffer.released and buffer.unmapped, "a frame still pins the pixels"
        assert REGISTRY.lingering() == 0
        assert REGISTRY.live(job.id) == []
        assert mappings() <= before_maps
        assert locked_kib() <= before_locked
    finally:
        gc.enable()
