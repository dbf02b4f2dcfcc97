"""Fairness: the guest at the kiosk is not starved by phones; every waiting guest sees where
they stand."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from appliance.errors import UserFacingError
from appliance.jobs.fair_queue import FairQueue
from appliance.jobs.job import JobState
from tests.jobs.test_manager import make, wait_state


@pytest.fixture
def store_dir(ram_dir: Path) -> Path:
    return ram_dir / "store"


def test_kiosk_jobs_run_first_and_positions_follow() -> None:
    lanes = FairQueue()
    for name in ("phone-1", "phone-2"):
        lanes.put(name)
    lanes.put("kiosk-1", kiosk=True)
    assert [lanes.position(n) for n in ("kiosk-1", "phone-1", "phone-2")] == [1, 2, 3]
    lanes.discard("phone-1")
    assert lanes.position("phone-2") == 2 and lanes.position("phone-1") is None
    assert lanes.get() == "kiosk-1"
    assert lanes.get() == "phone-2"
    lanes.put(None)
    assert lanes.get() is None


def test_get_waits_for_a_job() -> None:
    lanes = FairQueue()
    got: list[str | None] = []
    reader = threading.Thread(target=lambda: got.append(lanes.get()))
    reader.start()
    lanes.put("phone-1")
    reader.join(5)
    assert got == ["phone-1"]


def test_phones_leave_a_place_for_the_kiosk(store_dir: Path) -> None:
    jobs, _store, _clock = make(store_dir, depth=3)
    gate = threading.Event()
    try:
        waiting = []
        for _ in range(2):  # two phones fill all but the kiosk's place
            job, _token = jobs.create_job(None, "faces", kiosk=False)
            jobs.enqueue(job, lambda _job: gate.wait(10))
            waiting.append(job)
        wait_state(jobs, waiting[0], JobState.RUNNING)  # the first runs, the second waits
        with pytest.raises(UserFacingError) as refused:
            jobs.create_job(None, "faces", kiosk=False)
        assert (refused.value.code, refused.value.status) == ("queue_full", 429)
        assert refused.value.retry_after_s is not None and refused.value.retry_after_s >= 1
        kiosk, _token = jobs.create_job(None, "faces", kiosk=True)  # the kiosk still gets in
        jobs.enqueue(kiosk, lambda _job: None)
        assert jobs.queue_position(kiosk.id) == 1  # next, ahead of the waiting phone
        assert jobs.queue_position(waiting[1].id) == 2
        with pytest.raises(UserFacingError):
            jobs.create_job(None, "faces", kiosk=True)  # now the queue is full for everyone
    finally:
        gate.set()
        jobs.close()
