"""Photos of a session: admission, access by token only (no IDOR), release, expiry, and the
session's own deletion. The store, keys and buffers are the real ones; no model runs here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance import audit
from appliance.errors import UserFacingError
from appliance.jobs.job import Job, JobState, OutputInfo
from appliance.jobs.manager import JobManager
from appliance.jobs.photos import PIXELS, FaceRule, StoredPhoto
from appliance.secure.buffers import REGISTRY
from appliance.secure.store import RamStore
from tests.jobs.test_manager import Clock, make, wait_state
from tests.jobs.test_manager import store_dir as store_dir  # the fixture


@pytest.fixture
def manager(store_dir: Path) -> Iterator[tuple[JobManager, RamStore, Clock]]:
    made = make(store_dir)
    yield made
    made[0].close()


def add_photo(jobs: JobManager, store: RamStore, token: str | None = None
              ) -> tuple[StoredPhoto, str]:
    """A photo as receive_photo leaves it: pixels in the store, a mesh under the photo's id."""
    photo, secret = jobs.create_photo(token)
    _buffer, pixels = REGISTRY.array((4, 5, 3), owner=photo.scratch_owner)
    pixels[:] = 200
    store.put(photo.id, PIXELS, pixels, photo.key)
    REGISTRY.release_owner(photo.scratch_owner)
    REGISTRY.array((468, 3), np.float32, owner=photo.id, label="mesh")
    photo.width, photo.height, photo.ready = 5, 4, True
    return photo, secret or token or ""


def code_of(call: object) -> str:
    with pytest.raises(UserFacingError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code


def test_a_photo_is_the_sessions_only(manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    mine, token = add_photo(jobs, store)
    theirs, other = add_photo(jobs, store)
    assert jobs.photo_for_session(mine.id, token) is mine
    assert code_of(lambda: jobs.photo_for_session(theirs.id, token)) == "photo_not_found"
    assert code_of(lambda: jobs.photo_for_session(mine.id, None)) == "token_required"
    assert code_of(lambda: jobs.photo_for_session(mine.id, "forged")) == "token_invalid"
    # A job may name only this session's photos: another's is "not found", like a missing one.
    assert code_of(lambda: jobs.create_job(token, "faces", photo_ids=[mine.id, theirs.id])
                   ) == "photo_not_found"
    assert code_of(lambda: jobs.create_job(None, "faces", photo_ids=[mine.id])
                   ) == "token_required"
    assert jobs.stats()["jobs"] == 0
    job, new = jobs.create_job(other, "faces", photo_ids=[theirs.id])
    assert new is None and job.photo_ids == [theirs.id]


def test_releasing_a_photo_wipes_its_mesh_pixels_and_key(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    photo, token = add_photo(jobs, store)
    key = photo.key
    assert REGISTRY.live(photo.id) and store.names(photo.id) == [PIXELS]
    assert jobs.release_photo(photo.id) is True
    assert REGISTRY.live(photo.id) == [] and store.job_ids() == []
    assert key.released and photo.key is None
    assert code_of(lambda: jobs.photo_for_session(photo.id, token)) == "photo_not_found"
    assert jobs.release_photo(photo.id) is False
    assert [e["event"] for e in audit.recent(2)] == ["consent_given", "photo_deleted"]


def test_a_refused_upload_leaves_no_session_behind(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    photo, secret = jobs.create_photo(None)
    REGISTRY.array((10,), owner=photo.scratch_owner)
    jobs.fail_photo(photo, UserFacingError("no_face", "x", status=422), new_session=True)
    assert jobs.stats()["sessions"] == 0 and jobs.stats()["photos"] == 0
    assert REGISTRY.live(photo.scratch_owner) == [] and store.job_ids() == []
    assert secret and code_of(lambda: jobs.photo_for_session(photo.id, secret)) == \
        "token_invalid"


def test_deleting_the_session_releases_everything_and_ends_the_token(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    first, token = add_photo(jobs, store)
    second, _ = add_photo(jobs, store, token)
    bystander, other = add_photo(jobs, store)
    job, _ = jobs.create_job(token, "faces", photo_ids=[first.id])
    REGISTRY.array((16,), owner=job.id)
    assert jobs.release_session(token) == {"jobs": 1, "photos": 2}
    for owner in (first.id, second.id, job.id):
        assert REGISTRY.live(owner) == []
    assert store.job_ids() == [bystander.id]
    assert code_of(lambda: jobs.photo_for_session(first.id, token)) == "token_invalid"
    assert code_of(lambda: jobs.release_session(token)) == "token_invalid"
    assert jobs.photo_for_session(bystander.id, other) is bystander


def test_photos_expire_with_their_retention(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, clock = manager
    photo, token = add_photo(jobs, store)
    clock.now += jobs.cfg.retention.default_minutes * 60 - 1
    jobs.sweep_expired()
    assert jobs.photo_for_session(photo.id, token) is photo
    clock.now += 2
    jobs.sweep_expired()
    assert REGISTRY.live(photo.id) == [] and store.job_ids() == []
    assert jobs.stats() | {"states": {}} == {"jobs": 0, "states": {}, "sessions": 0,
                                            "photos": 0, "queue_depth": 4}


def test_a_queued_job_whose_photo_was_deleted_fails_cleanly(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    photo, token = add_photo(jobs, store)
    job, _ = jobs.create_job(token, "faces", photo_ids=[photo.id])
    jobs.release_photo(photo.id)

    def work(running: Job) -> None:
        if jobs.photo(running.photo_ids[0]) is None:
            raise UserFacingError("photo_not_found", "gone", status=404)

    jobs.enqueue(job, work)
    wait_state(jobs, job, JobState.FAILED)
    assert job.error is not None and job.error.code == "photo_not_found"


def test_face_rule_for_an_upload() -> None:
    assert FaceRule.for_upload().counts == {1, 2}
    assert FaceRule.for_upload(faces=2).counts == {2}


def test_an_upload_that_ends_after_its_session_was_deleted_leaves_nothing(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    photo, token = jobs.create_photo(None)
    assert token is not None
    jobs.release_session(token)  # the kiosk's idle reset while the photo is being gated
    assert photo.key is None  # released with the session: nothing more can be encrypted
    assert code_of(lambda: jobs.photo_received(photo)) == "photo_not_found"
    assert store.job_ids() == [] and REGISTRY.live(photo.id) == []
    assert not photo.ready


def test_a_failed_job_lists_no_output_as_ready(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    photo, token = add_photo(jobs, store)
    job, _ = jobs.create_job(token, "faces", photo_ids=[photo.id])
    job.outputs = {"a.jpg": OutputInfo("a.jpg", "image/jpeg"),
                   "b.jpg": OutputInfo("b.jpg", "image/jpeg")}

    def work(running: Job) -> None:
        _buffer, view = REGISTRY.array((64,), owner=running.id)
        store.put(running.id, "a.jpg", view, running.key)
        running.mark_ready("a.jpg", "image/jpeg", 64)
        raise RuntimeError("the second style broke")

    jobs.enqueue(job, work)
    wait_state(jobs, job, JobState.FAILED)
    assert [o["ready"] for o in job.status()["outputs"]] == [False, False]
    assert store.names(job.id) == [] and REGISTRY.live(job.id) == []
    assert job.status()["error"]["error"] == "internal_error"


def test_consent_is_recorded_with_each_photo_and_a_job_on_them_inherits_it(
        manager: tuple[JobManager, RamStore, Clock]) -> None:
    jobs, store, _clock = manager
    photo, token = add_photo(jobs, store)
    job, _ = jobs.create_job(token, "faces", photo_ids=[photo.id])
    events = [(e["event"], e.get("photo_id") or e.get("job_id")) for e in audit.recent(3)]
    assert events == [("photo_received", photo.id), ("consent_given", photo.id),
                      ("job_created", job.id)]
