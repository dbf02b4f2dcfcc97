"""The RAM store: tmpfs only, ciphertext only, quotas, retention, overwrite-then-unlink, sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.secure import store as store_module
from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import JobKey
from appliance.secure.fs import filesystem_type
from appliance.secure.store import RamStore, StoreError

ROOT = Path(__file__).resolve().parent.parent
WRITER = ROOT / "tests" / "programs" / "store_writer.py"
CANARY = b"EPHEMERA-STORE-CANARY-0123456789"
SHM = Path("/dev/shm")

pytestmark = pytest.mark.skipif(not SHM.is_dir() or filesystem_type(SHM) != "tmpfs",
                                reason="needs /dev/shm on tmpfs")


@pytest.fixture
def store_dir(ram_dir: Path) -> Path:
    return ram_dir


def job() -> str:
    return f"job-{uuid.uuid4().hex}"


def payload(owner: str, data: bytes = CANARY * 50):
    buffer = REGISTRY.allocate(len(data), owner=owner, label="payload")
    buffer.view()[:] = memoryview(data)
    return buffer


def disk_dir() -> Path:
    """A directory on a persistent filesystem (the repository's own)."""
    assert filesystem_type(ROOT) not in ("tmpfs", "ramfs"), "repository is on tmpfs"
    return ROOT


def test_a_directory_on_disk_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    target = disk_dir() / f".store-test-{uuid.uuid4().hex}"
    with pytest.raises(StoreError) as info:
        RamStore(target, 1 << 20, 4)
    message = str(info.value)
    assert "persistent storage" in message and "tmpfs or ramfs" in message
    assert filesystem_type(ROOT) in message
    assert not target.exists()  # refused before creating anything


def test_dev_shm_is_accepted_and_the_directory_is_private(store_dir: Path) -> None:
    store = RamStore(store_dir, 1 << 20, 4)
    assert store_dir.is_dir()
    assert (store_dir.stat().st_mode & 0o777) == 0o700
    assert store.usage() == {"bytes": 0, "jobs": 0, "blobs": 0, "quota_bytes": 1 << 20,
                             "max_jobs": 4}


def test_a_symlinked_store_directory_is_refused(store_dir: Path) -> None:
    real = SHM / f"ephemera-test-real-{uuid.uuid4().hex}"
    real.mkdir()
    try:
        store_dir.symlink_to(real)
        with pytest.raises(StoreError, match="not a plain directory"):
            RamStore(store_dir, 1 << 20, 4)
    finally:
        store_dir.unlink()
        real.rmdir()


def test_from_config_uses_store_and_retention_settings(store_dir: Path) -> None:
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(store_dir),
                           "EPHEMERA_STORE_QUOTA_BYTES": "2MiB", "EPHEMERA_STORE_MAX_JOBS": "3",
                           "EPHEMERA_RETENTION_DEFAULT_MINUTES": "5"})
    store = RamStore.from_config(cfg)
    assert (store.path, store.quota_bytes, store.max_jobs) == (store_dir, 2 << 20, 3)
    assert store.default_retention_s == 300 and store.hard_cap_s == 24 * 3600


def test_blobs_are_ciphertext_with_random_names_and_round_trip(store_dir: Path) -> None:
    store = RamStore(store_dir, 1 << 20, 4)
    owner = job()
    key = JobKey.generate(owner)
    data = payload(owner)
    written = store.put(owner, "result.jpg", data.memoryview(), key)
    files = list(store_dir.iterdir())
    assert len(files) == 1 and files[0].stat().st_size == written
    assert (files[0].stat().st_mode & 0o777) == 0o600
    assert owner not in files[0].name and "result" not in files[0].name
    assert CANARY[:12] not in files[0].read_bytes()
    plain = store.get(owner, "result.jpg", key)
    assert plain.owner == owner and plain.nbytes == data.nbytes
    assert bytes(plain.view()) == CANARY * 50
    assert store.usage()["bytes"] == written and store.job_ids() == [owner]
    with pytest.raises(KeyError):
        store.get(owner, "other-name", key)
    files[0].unlink()  # as `ephemera purge` from another process would
    with pytest.raises(KeyError, match="gone"):
        store.get(owner, "result.jpg", key)
    REGISTRY.release_owner(owner)


def test_replacing_a_blob_removes_the_old_file(store_dir: Path) -> None:
    store = RamStore(store_dir, 1 << 20, 4)
    owner = job()
    key = JobKey.generate(owner)
    store.put(owner, "result", payload(owner).memoryview(), key)
    store.put(owner, "result", payload(owner, b"second").memoryview(), key)
    assert len(list(store_dir.iterdir())) == 1
    assert bytes(store.get(owner, "result", key).view()) == b"second"
    REGISTRY.release_owner(owner)


def test_delete_overwrites_with_zeros_before_unlinking(
        store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RamStore(store_dir, 1 << 20, 4)
    owner = job()
    key = JobKey.generate(owner)
    store.put(owner, "a", payload(owner).memoryview(), key)
    store.put(owner, "b", payload(owner).memoryview(), key)
    seen: list[bytes] = []
    real_unlink = os.unlink

    def inspecting_unlink(path: str) -> None:
        seen.append(Path(path).read_bytes())
        real_unlink(path)

    monkeypatch.setattr(store_module.os, "unlink", inspecting_unlink)
    assert store.delete_job(owner) == 2
    assert len(seen) == 2 and all(content and not any(content) for content in seen)
    assert list(store_dir.iterdir()) == [] and store.job_ids() == []
    assert store.delete_job(owner) == 0  # idempotent
    REGISTRY.release_owner(owner)


def test_quota_of_bytes_is_checked_before_writing(store_dir: Path) -> None:
    store = RamStore(store_dir, 4096, 8)
    owner = job()
    key = JobKey.generate(owner)
    store.put(owner, "a", payload(owner, b"x" * 3000).memoryview(), key)
    with pytest.raises(UserFacingError) as info:
        store.put(job(), "b", payload(owner, b"y" * 3000).memoryview(), key)
    error = info.value
    assert (error.code, error.status) == ("store_full", 429)
    # The truth: when the one held job expires (the default 15 minutes), not a capped guess.
    assert error.retry_after_s is not None and 899 <= error.retry_after_s <= 900
    assert "full" in error.message and error.remedy
    assert len(list(store_dir.iterdir())) == 1 and store.usage()["jobs"] == 1
    with pytest.raises(UserFacingError, match="larger than the booth's whole photo memory"):
        store.put(owner, "huge", payload(owner, b"z" * 5000).memoryview(), key)
    REGISTRY.release_owner(owner)


def test_quota_of_jobs(store_dir: Path) -> None:
    store = RamStore(store_dir, 1 << 20, 2)
    owners = [job() for _ in range(3)]
    keys = [JobKey.generate(o) for o in owners]
    for o, k in zip(owners[:2], keys[:2], strict=True):
        store.put(o, "a", payload(o).memoryview(), k)
    with pytest.raises(UserFacingError) as info:
        store.put(owners[2], "a", payload(owners[2]).memoryview(), keys[2])
    assert info.value.code == "store_full" and "2 jobs" in info.value.message
    store.put(owners[0], "more", payload(owners[0]).memoryview(), keys[0])  # existing job: fine
    for o in owners:
        REGISTRY.release_owner(o)


def test_retention_default_caller_expiry_and_hard_cap(store_dir: Path) -> None:
    """The store's own clamp; releasing what is due is the job manager's sweep
    (tests/jobs/test_manager.py)."""
    now = [1_000_000.0]
    store = RamStore(store_dir, 1 << 20, 8, default_retention_s=900,
                     clock=lambda: now[0])
    a, b, c = job(), job(), job()
    for o in (a, b, c):
        store.put(o, "r", payload(o).memoryview(), JobKey.generate(o))
    assert store.expiry(a) == now[0] + 900  # the default
    assert store.register_job(b, expires_at=now[0] + 60) == now[0] + 60
    assert store.register_job(c, expires_at=now[0] + 10 * 24 * 3600) == now[0] + 24 * 3600
    capped = RamStore(store_dir, 1 << 20, 8, hard_cap_s=48 * 3600, clock=lambda: now[0])
    assert capped.hard_cap_s == 24 * 3600  # no configuration lifts the 24-hour cap
    for o in (a, b, c):
        store.delete_job(o)
        REGISTRY.release_owner(o)
    assert list(store_dir.iterdir()) == []


def test_purge_removes_known_jobs_and_stray_files(store_dir: Path) -> None:
    store = RamStore(store_dir, 1 << 20, 8)
    owner = job()
    store.put(owner, "r", payload(owner).memoryview(), JobKey.generate(owner))
    (store_dir / "stray").write_bytes(b"left over")
    (store_dir / "sub").mkdir()
    (store_dir / "sub" / "x").write_bytes(b"nested")
    assert store.purge() == 3
    assert list(store_dir.iterdir()) == [] and store.job_ids() == []
    REGISTRY.release_owner(owner)




def test_a_killed_process_leaves_only_unreadable_ciphertext_which_the_next_start_sweeps(
        store_dir: Path) -> None:
    canary = f"CANARY-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, str(WRITER), str(store_dir), canary],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    left = sorted(store_dir.iterdir())
    assert len(left) == 3
    for path in left:
        content = path.read_bytes()
        assert canary.encode() not in content and canary[:12].encode() not in content
        assert b"job-" not in content and b"blob-" not in content
    fresh = RamStore(store_dir, 1 << 22, 8)
    assert fresh.sweep_leftovers() == 3
    assert list(store_dir.iterdir()) == []
