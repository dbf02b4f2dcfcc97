"""The RAM store: encrypted blobs on tmpfs, overwritten then unlinked when a job is done.

Why each choice (P1, P2, P8 in docs/PRIVACY.md):

* tmpfs or ramfs only, checked with ``statfs`` when the store opens: a store on disk would put a
  guest's photo (even encrypted) on flash, which outlives the process and the key.
* every blob is AES-256-GCM under the job's own key (appliance.secure.crypto), which lives only in
  the service's memory: kill the process and whatever is left in the directory is noise.
* file names are random and the mapping (job, name) -> file is kept in memory only: a job id is
  random anyway, but nothing on the filesystem even says how many blobs a job had or what they
  were ("result.jpg"). After a crash the next start-up sweeps every file it does not know.
* deletion overwrites each file with zeros of the same length (tmpfs rewrites the same pages in
  place; there is no journal or copy-on-write) and then unlinks it; no fsync, there is no disk.
* quotas (bytes and jobs) are checked before anything is written, and a full store answers
  ``store_full`` (HTTP 429) with a retry hint instead of filling RAM until the kernel kills us.
* the caller (the job layer) owns retention: it tells the store each job's expiry, which the
  store clamps to the hard cap as a second line of defence, and its sweep
  (``JobManager.sweep_expired``) releases what is due, the blobs through ``delete_job``.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.config import RETENTION_DEFAULT_MINUTES, RETENTION_HARD_CAP_MINUTES, Config
from appliance.errors import UserFacingError
from appliance.secure.buffers import SecureBuffer
from appliance.secure.crypto import OVERHEAD, JobKey, associated_data
from appliance.secure.fs import RAM_FILESYSTEMS, filesystem_magic, filesystem_type

BLOB_SUFFIX = ".blob"
HARD_CAP_S = RETENTION_HARD_CAP_MINUTES * 60
_ZEROS = bytes(64 << 10)  # a constant source of zeros for overwriting (never guest data)
_OPEN_WRITE_NEW = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_OVERWRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class StoreError(RuntimeError):
    """The store cannot be used here (wrong filesystem, unusable directory): an operator error."""


@dataclass
class _Blob:
    filename: str
    size: int  # bytes on the filesystem (ciphertext + header + tag)


@dataclass
class _Job:
    created: float
    expires_at: float
    blobs: dict[str, _Blob] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(blob.size for blob in self.blobs.values())


def _overwrite_and_unlink(path: str) -> bool:
    """Zero a file in place (same length) then unlink it; symlinks are unlinked, never followed.

    Returns whether something was removed. Never raises for a file that vanished meanwhile.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISREG(info.st_mode) and info.st_size > 0:
        with contextlib.suppress(OSError):
            fd = os.open(path, _OPEN_OVERWRITE)
            try:
                remaining = info.st_size
                while remaining > 0:
                    remaining -= os.write(fd, memoryview(_ZEROS)[: min(remaining, len(_ZEROS))])
            finally:
                os.close(fd)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class RamStore:
    """Encrypted per-job blobs in a tmpfs/ramfs directory, with quotas and retention."""

    def __init__(self, path: str | os.PathLike[str], quota_bytes: int, max_jobs: int, *,
                 default_retention_s: float = RETENTION_DEFAULT_MINUTES * 60,
                 hard_cap_s: float = HARD_CAP_S,
                 clock: Callable[[], float] = time.time) -> None:
        if quota_bytes <= 0 or max_jobs <= 0:
            raise ValueError("quota_bytes and max_jobs must be positive")
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self.max_jobs = max_jobs
        self.hard_cap_s = min(hard_cap_s, HARD_CAP_S)
        self.default_retention_s = min(default_retention_s, self.hard_cap_s)
        self._clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._prepare_directory()

    @classmethod
    def from_config(cls, cfg: Config) -> RamStore:
        return cls(cfg.store.path, cfg.store.quota_bytes, cfg.store.max_jobs,
                   default_retention_s=cfg.retention.default_minutes * 60,
                   hard_cap_s=cfg.retention.hard_cap_minutes * 60)

    # -- set-up -------------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        parent = self.path.parent
        probe = self.path if self.path.exists() else parent
        while not probe.exists():  # the nearest existing ancestor decides for a new directory
            probe = probe.parent
        self._require_ram(probe)
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the RAM store directory {self.path}: "
                             f"{exc.strerror}") from None
        info = os.lstat(self.path)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise StoreError(f"the RAM store path {self.path} is not a plain directory "
                             "(a symlink or a file): remove it or choose another store.path")
        if info.st_uid != os.getuid():
            raise StoreError(f"the RAM store directory {self.path} belongs to uid "
                             f"{info.st_uid}, not to this service (uid {os.getuid()})")
        os.chmod(self.path, 0o700)
        self._require_ram(self.path)  # the directory itself (a mount point may sit at it)

    def _require_ram(self, path: Path) -> None:
        try:
            magic = filesystem_magic(path)
        except OSError as exc:
            raise StoreError(f"cannot inspect the filesystem of {path}: {exc.strerror}") from None
        if magic not in RAM_FILESYSTEMS:
            raise StoreError(
                f"refusing to keep guests' photos at {self.path}: it is on "
                f"{filesystem_type(path)}, which is persistent storage. The RAM store must be on "
                "tmpfs or ramfs: set store.path to a directory under /dev/shm or /run (the "
                "systemd unit's RuntimeDirectory=), or mount a tmpfs there")

    # -- quotas and bookkeeping ---------------------------------------------------------------

    def _job(self, job_id: str, now: float) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            if len(self._jobs) >= self.max_jobs:
                raise self._full(f"the RAM store already holds {self.max_jobs} jobs, its limit",
                                 now)
            job = _Job(created=now, expires_at=now + self.default_retention_s)
            self._jobs[job_id] = job
        return job

    def _full(self, why: str, now: float) -> UserFacingError:
        # The truth: when the first held job expires (no cap that would promise too early).
        due = [job.expires_at - now for job in self._jobs.values()]
        retry = max(1, math.ceil(min(due))) if due else 60
        return UserFacingError(
            "store_full", f"The booth's memory for photos is full ({why}).", status=429,
            remedy=f"Try again in about {retry} seconds, when earlier photos have been deleted.",
            retry_after_s=retry)

    def register_job(self, job_id: str, *, created: float | None = None,
                     expires_at: float | None = None) -> float:
        """Record a job's times (the job layer's); returns the expiry after the hard-cap clamp."""
        with self._lock:
            now = self._clock()
            job = self._job(job_id, now)
            if created is not None:
                job.created = created
            wanted = expires_at if expires_at is not None else job.created + (
                self.default_retention_s)
            job.expires_at = min(wanted, job.created + self.hard_cap_s)
            return job.expires_at

    def usage(self) -> dict[str, int]:
        """Counts for the admin page and doctor: never names or contents."""
        with self._lock:
            return {
                "bytes": sum(job.nbytes for job in self._jobs.values()),
                "jobs": len(self._jobs),
                "blobs": sum(len(job.blobs) for job in self._jobs.values()),
                "quota_bytes": self.quota_bytes,
                "max_jobs": self.max_jobs,
            }

    def bytes_of(self, job_id: str) -> int:
        """Bytes one job's blobs take (for per-session quotas)."""
        with self._lock:
            job = self._jobs.get(job_id)
            return 0 if job is None else job.nbytes

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def expiry(self, job_id: str) -> float | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.expires_at

    def names(self, job_id: str) -> list[str]:
        with self._lock:
            job = self._jobs.get(job_id)
            return [] if job is None else list(job.blobs)

    # -- blobs --------------------------------------------------------------------------------

    def put(self, job_id: str, name: str, data: Any, key: JobKey) -> int:
        """Encrypt ``data`` (a secure-buffer view or memoryview) under ``key`` and store it.

        Replaces an earlier blob of the same name. Returns the bytes written. Raises
        ``store_full`` (429) before writing anything when a quota would be exceeded.
        """
        if not job_id or not name:
            raise ValueError("a blob needs a job id and a name")
        size = memoryview(data).nbytes + OVERHEAD
        with self._lock:
            now = self._clock()
            existing = self._jobs.get(job_id)
            old = existing.blobs.get(name) if existing else None
            used = sum(job.nbytes for job in self._jobs.values()) - (old.size if old else 0)
            if size > self.quota_bytes:
                raise UserFacingError(
                    "store_full", f"This result ({size} bytes) is larger than the booth's "
                    f"whole photo memory ({self.quota_bytes} bytes).", status=429,
                    remedy="Ask the operator to raise store.quota_bytes.", retry_after_s=300)
            if used + size > self.quota_bytes:
                raise self._full(f"{used} of {self.quota_bytes} bytes in use", now)
            job = self._job(job_id, now)
            blob = key.encrypt(data, associated_data(job_id, name))
            filename = secrets.token_hex(16) + BLOB_SUFFIX
            target = str(self.path / filename)
            try:
                fd = os.open(target, _OPEN_WRITE_NEW, 0o600)
                try:
                    view = memoryview(blob)
                    written = 0
                    while written < len(blob):
                        written += os.write(fd, view[written:])
                    view.release()
                finally:
                    os.close(fd)
            except OSError as exc:
                _overwrite_and_unlink(target)
                if not job.blobs:
                    del self._jobs[job_id]
                raise UserFacingError(
                    "store_full", f"The booth's photo memory could not take this result "
                    f"({exc.strerror}).", status=429,
                    remedy="Try again in a minute; if it persists, ask the operator to check "
                           "the RAM store with `ephemera doctor`.", retry_after_s=60) from None
            job.blobs[name] = _Blob(filename, len(blob))
            if old is not None:
                _overwrite_and_unlink(str(self.path / old.filename))
            return len(blob)

    def get(self, job_id: str, name: str, key: JobKey, *,
            owner: str | None = None) -> SecureBuffer:
        """Decrypt a blob into a new secure buffer owned by ``owner`` (default ``job_id``).

        Raises KeyError when the job has no such blob (never stored, deleted, expired, purged).
        """
        with self._lock:
            job = self._jobs.get(job_id)
            blob = job.blobs.get(name) if job else None
            if blob is None:
                raise KeyError(f"no blob {name!r} for this job")
            path = str(self.path / blob.filename)
            ciphertext = bytearray(blob.size)
        try:
            fd = os.open(path, _OPEN_READ)
        except FileNotFoundError:  # purged by `ephemera purge` or deleted meanwhile
            raise KeyError(f"blob {name!r} of this job is gone (deleted or purged)") from None
        try:
            view = memoryview(ciphertext)
            got = 0
            while got < blob.size:
                n = os.readv(fd, [view[got:]])
                if n == 0:
                    break
                got += n
            view.release()
        finally:
            os.close(fd)
        return key.decrypt(memoryview(ciphertext)[:got], associated_data(job_id, name),
                           owner=job_id if owner is None else owner, label=f"store:{name}")

    def delete_job(self, job_id: str) -> int:
        """Overwrite then unlink every blob of a job and forget it. Idempotent; returns blobs."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return 0
        return sum(_overwrite_and_unlink(str(self.path / blob.filename))
                   for blob in job.blobs.values())

    def purge(self) -> int:
        """Delete everything: known jobs and any stray file in the directory. Returns files."""
        with self._lock:
            self._jobs.clear()
            return self._sweep_directory(known=set())

    def sweep_leftovers(self) -> int:
        """At start-up: remove files no live job owns (left by a process that was killed).

        Such files are ciphertext under a key that died with that process, so they are
        unreadable; they are removed anyway so they cannot fill the store.
        """
        with self._lock:
            known = {blob.filename for job in self._jobs.values() for blob in job.blobs.values()}
            return self._sweep_directory(known)

    def _sweep_directory(self, known: set[str]) -> int:
        removed = 0
        for entry in os.scandir(self.path):
            if entry.name in known:
                continue
            if entry.is_dir(follow_symlinks=False):
                for root, dirs, files in os.walk(entry.path, topdown=False):
                    for item in files:
                        removed += _overwrite_and_unlink(os.path.join(root, item))
                    for item in dirs:
                        with contextlib.suppress(OSError):
                            os.rmdir(os.path.join(root, item))
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)
            else:
                removed += _overwrite_and_unlink(entry.path)
        return removed
