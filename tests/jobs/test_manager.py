"""The job lifecycle: admission, the one worker, failures, access by token, release, expiry.

The work functions here are the manager's input (any callable taking the job), written in the
test; the store, keys, buffers and models are the real ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance import audit
from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.jobs.job import Job, JobState, ResultInfo
from appliance.jobs.manager import JobManager
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.secure.store import RamStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store_dir(ram_dir: Path) -> Path:
    return ram_dir / "store"


def make(store_dir: Path, depth: int = 4, clock: Clock | None = None
         ) -> tuple[JobManager, RamStore, Clock]:
    cfg = load_config(env={"EPHEMERA_QUEUE_DEPTH": str(depth),
                           "EPHEMERA_STORE_PATH": str(store_dir)})
    clock = clock or Clock()
    store = RamStore(cfg.store.path, cfg.store.quota_bytes, cfg.store.max_jobs, clock=clock)
    return (JobManager(cfg, store, ModelSet(cfg), clock=clock, sweep_interval_s=None), store,
            clock)


def store_result(store: RamStore) -> Any:
    def work(job: Job) -> None:
        buffer, view = REGISTRY.array((64,), owner=job.id, label="intermediate")
        view[:] = 7
        store.put(job.id, "result.bin", view, job.key)
        job.result = ResultInfo("result.bin", "application/octet-stream", 64, {"faces": 1})
        buffer.release()
    return work


def wait_state(manager: JobManager, job: Job, *states: JobState) -> None:
    for _ in range(500):
        if job.state in states:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"job stayed {job.state}")


@pytest.fixture
def manager(store_dir: Path) -> Iterator[tuple[JobManager, RamStore, Clock]]:
    made = make(store_dir)
    yield made
    made[0].close()


def test_job_runs_stores_ciphertext_and_release_wipes_everything(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    job, token = jobs.create_job(None, "faces")
    assert token
    upload = REGISTRY.allocate(100, owner=job.id, label="upload")
    jobs.enqueue(job, store_result(store))
    wait_state(jobs, job, JobState.DONE)
    assert jobs.job_for_session(job.id, token) is job
    status = job.status()
    assert status["state"] == "done" and status["progress"] == 1.0
    assert status["result"]["faces"] == 1
    plain = store.get(job.id, "result.bin", job.key)
    assert bytes(plain.view()) == bytes([7]) * 64
    plain.release()
    files = [p for p in Path(store.path).iterdir()]
    assert len(files) == 1 and bytes([7]) * 16 not in files[0].read_bytes()
    key = job.key

    assert jobs.release_job(job.id, "deleted")
    assert not jobs.release_job(job.id, "deleted")  # idempotent
    assert job.state is JobState.RELEASED
    assert upload.released and key.released
    assert REGISTRY.live(job.id) == []
    assert store.job_ids() == [] and list(Path(store.path).iterdir()) == []
    with pytest.raises(UserFacingError) as info:
        jobs.job_for_session(job.id, token)
    assert info.value.status == 404
    events = [e["event"] for e in audit.recent(20) if e.get("job_id") == job.id]
    assert events == ["job_created", "consent_given", "job_deleted"]


def test_queue_full_is_429_with_a_retry_hint(store_dir: Path) -> None:
    jobs, _store, _clock = make(store_dir, depth=1)
    gate = threading.Event()
    try:
        first, token = jobs.create_job(None, "faces")
        jobs.enqueue(first, lambda job: gate.wait(10))
        with pytest.raises(UserFacingError) as info:
            jobs.create_job(token, "faces")
        assert (info.value.code, info.value.status) == ("queue_full", 429)
        stats = jobs.stats()
        with pytest.raises(UserFacingError):
            jobs.create_job(None, "faces")
        assert jobs.stats()["sessions"] == stats["sessions"]  # a refusal makes no session
        assert info.value.retry_after_s and info.value.retry_after_s >= 1
        gate.set()
        wait_state(jobs, first, JobState.DONE)
        jobs.create_job(token, "faces")  # room again
    finally:
        gate.set()
        jobs.close()


def test_a_failed_job_keeps_its_error_and_loses_its_data_at_once(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, _store, _clock = manager
    job, token = jobs.create_job(None, "faces")
    upload = REGISTRY.allocate(100, owner=job.id, label="upload")

    def no_face(job: Job) -> None:
        raise UserFacingError("no_face", "No face found.", status=422)

    jobs.enqueue(job, no_face)
    wait_state(jobs, job, JobState.FAILED)
    assert upload.released and REGISTRY.live(job.id) == []
    assert job.status()["error"]["error"] == "no_face"
    assert jobs.job_for_session(job.id, token) is job

    crashing, _none = jobs.create_job(token, "faces")
    jobs.enqueue(crashing, lambda job: 1 / 0)  # type: ignore[func-returns-value]
    wait_state(jobs, crashing, JobState.FAILED)
    assert crashing.error is not None and crashing.error.code == "internal_error"


def test_release_of_a_running_job_waits_for_the_run(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, _store, _clock = manager
    job, _token = jobs.create_job(None, "faces")
    started, gate = threading.Event(), threading.Event()
    buffers: list[Any] = []

    def slow(job: Job) -> None:
        buffers.append(REGISTRY.allocate(10, owner=job.id))
        started.set()
        gate.wait(10)
        assert not buffers[0].released  # release did not pull memory from under the run

    jobs.enqueue(job, slow)
    assert started.wait(10)
    assert jobs.release_job(job.id, "deleted")
    assert job.state is JobState.RUNNING
    gate.set()
    wait_state(jobs, job, JobState.RELEASED)
    assert buffers[0].released


def test_tokens_guard_every_job(manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, _store, clock = manager
    job, my_token = jobs.create_job(None, "faces")
    _theirs, their_token = jobs.create_job(None, "faces")
    assert my_token and their_token and my_token != their_token
    second, new = jobs.create_job(my_token, "faces")
    assert new is None and second.session_id == job.session_id

    def code(fn: Any, *args: Any) -> tuple[str, int]:
        with pytest.raises(UserFacingError) as info:
            fn(*args)
        return info.value.code, info.value.status

    assert code(jobs.job_for_session, job.id, None) == ("token_required", 401)
    assert code(jobs.job_for_session, job.id, "forged") == ("token_invalid", 403)
    assert code(jobs.create_job, "forged", "faces") == ("token_invalid", 403)
    # A foreign session and a job that does not exist get the very same answer.
    assert code(jobs.job_for_session, job.id, their_token) == ("job_not_found", 404)
    assert code(jobs.job_for_session, "0" * 32, my_token) == ("job_not_found", 404)

    download, ttl = jobs.issue_download_token(job)
    assert 0 < ttl <= 300
    assert code(jobs.job_for_download, "0" * 32, download) == ("token_invalid", 403)
    assert jobs.job_for_download(job.id, download) is job
    assert code(jobs.job_for_download, job.id, download) == ("token_invalid", 403)  # used

    late, _ttl = jobs.issue_download_token(job)
    clock.now += 301
    assert code(jobs.job_for_download, job.id, late) == ("token_invalid", 403)


def test_retention_expires_jobs_and_sessions(manager: tuple[JobManager, RamStore, Clock]
                                             ) -> None:
    jobs, store, clock = manager
    job, token = jobs.create_job(None, "faces", retention_minutes=2)
    assert job.expires_at == clock.now + 120
    with pytest.raises(UserFacingError, match="1 to 1440"):
        jobs.create_job(token, "faces", retention_minutes=1441)
    clock.now += 119
    assert jobs.sweep_expired() == 0
    clock.now += 2
    assert jobs.sweep_expired() == 1
    assert job.state is JobState.RELEASED and store.job_ids() == []
    assert audit.recent(1)[0]["event"] == "job_expired"
    clock.now += 15 * 60
    jobs.sweep_expired()
    with pytest.raises(UserFacingError) as info:
        jobs.create_job(token, "faces")
    assert info.value.status == 403


def test_checking_a_download_token_does_not_spend_it(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs = manager[0]
    job, _token = jobs.create_job(None, "faces")
    download, _ttl = jobs.issue_download_token(job)
    for _ in range(3):  # a link preview, an early scan, a retry: all leave it valid
        assert jobs.job_for_download(job.id, download, spend=False) is job
    jobs.spend_download(job, download)
    with pytest.raises(UserFacingError) as caught:
        jobs.spend_download(job, download)  # the second phone of a race
    assert (caught.value.code, caught.value.status) == ("token_invalid", 403)
    with pytest.raises(UserFacingError):
        jobs.job_for_download(job.id, download, spend=False)


def test_one_session_cannot_fill_the_booth(store_dir: Path) -> None:
    from appliance.jobs.manager import SESSION_MAX_JOBS
    jobs, _store, _clock = make(store_dir, depth=32)  # the queue is not what stops it here
    _job, token = jobs.create_job(None, "faces")
    for _ in range(SESSION_MAX_JOBS - 1):
        jobs.create_job(token, "faces")
    with pytest.raises(UserFacingError) as info:
        jobs.create_job(token, "faces")
    assert (info.value.code, info.value.status) == ("session_full", 429)
    # Retry-After is when this session's first photo really expires (15 minutes).
    assert info.value.retry_after_s == 15 * 60
    other, _other_token = jobs.create_job(None, "faces")  # everyone else still gets in
    assert other.state is JobState.QUEUED
    jobs.close()


def test_only_the_operator_keeps_photos_longer_than_the_default(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, _store, clock = manager
    with pytest.raises(UserFacingError) as info:
        jobs.create_job(None, "faces", retention_minutes=1440)
    assert (info.value.code, info.value.status) == ("retention_operator_only", 403)
    job, _token = jobs.create_job(None, "faces", retention_minutes=1440, operator=True)
    assert job.expires_at == clock.now + 1440 * 60


def test_failed_jobs_count_against_the_store_and_are_cleared_soon(store_dir: Path) -> None:
    from appliance.jobs.manager import FAILED_KEEP_S
    cfg_jobs = 3
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(store_dir),
                           "EPHEMERA_STORE_MAX_JOBS": str(cfg_jobs)})
    clock = Clock()
    store = RamStore(cfg.store.path, cfg.store.quota_bytes, cfg.store.max_jobs, clock=clock)
    jobs = JobManager(cfg, store, ModelSet(cfg), clock=clock, sweep_interval_s=None)
    try:
        def fail(job: Job) -> None:
            raise UserFacingError("no_face", "No face.", status=422)

        for _ in range(cfg_jobs):
            job, _token = jobs.create_job(None, "faces")
            jobs.enqueue(job, fail)
            wait_state(jobs, job, JobState.FAILED)
        assert jobs.is_full()
        with pytest.raises(UserFacingError) as info:
            jobs.create_job(None, "faces")
        assert info.value.code == "store_full" and info.value.retry_after_s == FAILED_KEEP_S
        clock.now += FAILED_KEEP_S
        assert jobs.sweep_expired() == cfg_jobs
        assert not jobs.is_full()
        jobs.create_job(None, "faces")
    finally:
        jobs.close()


def test_the_sweep_thread_releases_on_time_and_survives_a_failing_sweep(
        store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one retention mechanism running on its own: no caller drives it."""
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(store_dir)})
    clock = Clock()
    store = RamStore(cfg.store.path, cfg.store.quota_bytes, cfg.store.max_jobs, clock=clock)
    jobs = JobManager(cfg, store, ModelSet(cfg), clock=clock, sweep_interval_s=0.02)
    try:
        job, _token = jobs.create_job(None, "faces", retention_minutes=1)
        jobs.enqueue(job, store_result(store))
        wait_state(jobs, job, JobState.DONE)
        sweeps = {"failed": 0}
        real_sweep = jobs.sweep_expired

        def failing_once() -> int:
            if not sweeps["failed"]:
                sweeps["failed"] += 1
                raise RuntimeError("a sweep that fails")
            return real_sweep()

        monkeypatch.setattr(jobs, "sweep_expired", failing_once)
        clock.now += 61
        wait_state(jobs, job, JobState.RELEASED)
        assert sweeps["failed"] == 1 and store.job_ids() == []
    finally:
        jobs.close()
