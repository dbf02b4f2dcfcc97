"""The job manager: sessions, the queue, the one worker, retention and release.

Why one worker thread: the models (and on a Jetson the GPU's activation memory) are used by one
job at a time, so a job's intermediate tensors never mix with another's and ``zeroise_all()``
after a run cannot pull memory out from under a concurrent run. Requests only decode and queue.

Why release is the centre: every way a job ends (owner deletes it, retention expires, it fails,
the service shuts down) goes through ``release_job``, which wipes the job's secure buffers, the
models' buffers, the encrypted blobs in the RAM store and the job's key, in that order, once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from appliance.audit import audit
from appliance.config import RETENTION_SWEEP_INTERVAL_S, Config
from appliance.errors import UserFacingError
from appliance.jobs.fair_queue import FairQueue
from appliance.jobs.job import Job, JobState, new_job_id
from appliance.jobs.photos import StoredPhoto, new_photo_id, photo_gone, release_photo_data
from appliance.jobs.tokens import CapabilityToken, Session
from appliance.models.backend import ModelProvider
from appliance.models.thread_priority import lower_current_thread
from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import KEY_LABEL, JobKey

log = logging.getLogger("ephemera.jobs")

JobWork = Callable[[Job], None]
DOWNLOAD_TOKEN_TTL_S = 300  # a QR code is scanned within minutes; the job's expiry caps it
FIRST_RUN_ESTIMATE_S = 5.0
# What one session (one guest's phone or one turn at the kiosk) may hold at once, so that one
# guest cannot fill the booth for everyone: photos, jobs and stored bytes.
SESSION_MAX_PHOTOS = 8
SESSION_MAX_JOBS = 8
SESSION_STORE_SHARE = 3  # a session may hold at most 1/3 of store.quota_bytes
FAILED_KEEP_S = 60  # long enough for the screen to read the error; then the slot is free


class Store(Protocol):
    """What the manager needs of appliance.secure.store.RamStore."""

    def register_job(self, job_id: str, *, created: float | None = None,
                     expires_at: float | None = None) -> float: ...

    def delete_job(self, job_id: str) -> Any: ...


def _not_found() -> UserFacingError:
    # The same answer for "no such job" and "not your job": a token holder learns nothing
    # about jobs that are not theirs.
    return UserFacingError("job_not_found", "There is no such job for this session. It may "
                           "have expired or been deleted.", status=404,
                           remedy="Start again with a new photo.")


def _photo_not_found() -> UserFacingError:
    return UserFacingError("photo_not_found", "There is no such photo for this session. It may "
                           "have expired or been deleted.", status=404,
                           remedy="Take or upload the photo again.")


def token_required() -> UserFacingError:
    return UserFacingError("token_required", "This needs the session token.", status=401,
                           remedy="Send it as 'Authorization: Bearer <session_token>'.")


def _token_invalid() -> UserFacingError:
    return UserFacingError("token_invalid", "This session or download link is not valid any "
                           "more: it expired, was used already, or never existed.", status=403,
                           remedy="Start again at the booth or scan a new QR code.")


class JobManager:
    """Owns every job of the service process. Thread-safe; one instance per worker process."""

    def __init__(self, cfg: Config, store: Store, models: ModelProvider, *,
                 clock: Callable[[], float] = time.time,
                 sweep_interval_s: float | None = RETENTION_SWEEP_INTERVAL_S) -> None:
        self.cfg = cfg
        self.store = store
        self.models = models
        self.clock = clock
        # The operator may change it on the admin page, within the hard cap, until restart.
        self.default_retention_minutes = cfg.retention.default_minutes
        self._lock = threading.RLock()
        self._models_lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._sessions: dict[str, Session] = {}
        self._photos: dict[str, StoredPhoto] = {}
        self._work: dict[str, JobWork] = {}
        self._queue = FairQueue()  # the kiosk's jobs first; positions for the guests
        self._run_seconds = FIRST_RUN_ESTIMATE_S
        self._watchers: list[Callable[[str], None]] = []
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work_loop, name="ephemera-jobs",
                                        daemon=True)
        self._worker.start()
        if sweep_interval_s is not None:  # None: the caller sweeps (tests drive the clock)
            threading.Thread(target=self._sweep_loop, args=(sweep_interval_s,),
                             name="ephemera-retention", daemon=True).start()

    # -- sessions ---------------------------------------------------------------------------

    def _find_session(self, token: str, now: float) -> Session | None:
        found = None
        for session in self._sessions.values():  # compare against all: constant-time per token
            if session.token.matches(token, now):
                found = session
        return found

    def _admit(self, item: Any, session: Session | None,
               now: float) -> tuple[Session, str | None]:
        """Register a photo or job with the store (which counts both against its max_jobs and
        clamps expiry to the hard cap), attach it to ``session`` (a new one if None) and give
        it a key of its own; returns (session, the new session's token or None). Call with
        ``self._lock`` held. Nothing stays registered without a key."""
        try:
            item.expires_at = self.store.register_job(item.id, created=now,
                                                      expires_at=item.expires_at)
        except UserFacingError as exc:
            audit("request_refused", reason=exc.code)
            raise
        secret = None
        if session is None:
            session, secret = self._new_session(now)
        item.session_id = session.id
        try:
            item.key = JobKey.generate(owner=item.id)
        except BaseException:
            self.store.delete_job(item.id)
            raise
        return session, secret

    def _new_session(self, now: float) -> tuple[Session, str]:
        """A fresh session (call with the lock held); returns it and its secret token."""
        secret, capability = CapabilityToken.issue(
            now + self.default_retention_minutes * 60)
        session = Session(new_job_id(), capability)
        self._sessions[session.id] = session
        return session, secret

    def _session_or_raise(self, token: str | None, now: float) -> Session:
        if not token:
            raise token_required()
        session = self._find_session(token, now)
        if session is None:
            raise _token_invalid()
        return session

    def _drop_if_unused(self, session_id: str) -> None:
        """Forget a session made for a request that was refused (its token was never sent)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.empty:
                del self._sessions[session_id]

    # -- photos -------------------------------------------------------------------------------

    def create_photo(self, token: str | None, *,
                     retention_minutes: int | None = None) -> tuple[StoredPhoto, str | None]:
        """Admit a photo into a session (a new one without ``token``) and give it a key.

        The photo is not usable until ``photo_received``; a refused upload goes through
        ``fail_photo``. Audited: photo_received and consent_given.
        """
        keep_s = self.retention_seconds(retention_minutes)
        now = self.clock()
        with self._lock:
            session = self._find_session(token, now) if token else None
            if token and session is None:
                raise _token_invalid()
            self._check_room(session, now, "photo")
            photo = StoredPhoto(id=new_photo_id(), session_id="", created_at=now,
                                expires_at=now + keep_s)
            session, secret = self._admit(photo, session, now)
            self._photos[photo.id] = photo
            session.photo_ids.add(photo.id)
            session.extend_to(photo.expires_at)
        audit("photo_received", photo_id=photo.id, retention_s=keep_s)
        audit("consent_given", photo_id=photo.id, attestation="adults-consenting")
        return photo, secret

    @contextlib.contextmanager
    def models_in_use(self) -> Iterator[None]:
        """Run face analysis outside the worker: one user of the models at a time, zeroised
        after (an upload's gating waits for the running job, and the other way round)."""
        with self._models_lock:
            try:
                yield
            finally:
                self._zeroise_models()

    def photo_received(self, photo: StoredPhoto) -> None:
        """The photo is decoded, gated and stored: usable by jobs from now on. If its session
        was deleted meanwhile, what the upload stored is wiped and the upload is refused."""
        with self._lock:
            if self._photos.get(photo.id) is photo:
                photo.ready = True
                return
        release_photo_data(photo, self.store)
        raise _photo_not_found()

    def fail_photo(self, photo: StoredPhoto, error: UserFacingError, *,
                   new_session: bool = False) -> None:
        """The upload was refused (bad file, a gate): nothing of it stays."""
        audit("request_refused", photo_id=photo.id, reason=error.code)
        self.release_photo(photo.id, "refused")
        release_photo_data(photo, self.store)  # again: a store entry made after a release
        if new_session:
            self._drop_if_unused(photo.session_id)

    def photo_for_session(self, photo_id: str, token: str | None) -> StoredPhoto:
        """The photo if ``token`` is its session's; 401/403/404 otherwise (404 also for
        another session's photo: nobody learns whether a photo exists)."""
        with self._lock:
            session = self._session_or_raise(token, self.clock())
            photo = self._photos.get(photo_id)
            if photo is None or photo.session_id != session.id or not photo.ready:
                raise _photo_not_found()
            return photo

    def photo(self, photo_id: str) -> StoredPhoto | None:
        """The worker's look-up of a job's photo (the job's session was checked at creation)."""
        with self._lock:
            photo = self._photos.get(photo_id)
            return photo if photo is not None and photo.ready else None

    def release_photo(self, photo_id: str, reason: str = "deleted") -> bool:
        """Wipe a photo: meshes, stored pixels, key. Jobs already running keep their own copy."""
        with self._lock:
            photo = self._photos.pop(photo_id, None)
            if photo is None:
                return False
            session = self._sessions.get(photo.session_id)
            if session is not None:
                session.photo_ids.discard(photo_id)
        release_photo_data(photo, self.store)
        event = {"expired": "photo_expired"}.get(reason, "photo_deleted")
        audit(event, photo_id=photo_id, reason=reason)
        return True

    def release_session(self, token: str | None) -> dict[str, int]:
        """Everything of one session now (the kiosk's idle reset); its token stops working."""
        with self._lock:
            session = self._session_or_raise(token, self.clock())
            del self._sessions[session.id]
            job_ids, photo_ids = list(session.job_ids), list(session.photo_ids)
        jobs = sum(1 for job_id in job_ids if self.release_job(job_id, "session_deleted"))
        photos = sum(1 for photo_id in photo_ids
                     if self.release_photo(photo_id, "session_deleted"))
        audit("session_deleted", jobs=jobs, photos=photos)
        return {"jobs": jobs, "photos": photos}

    # -- creating and running jobs ------------------------------------------------------------

    def retention_seconds(self, minutes: int | None, *, operator: bool = False) -> int:
        """The requested retention, or the default, never above the hard cap; a guest may
        only shorten it (keeping photos longer is the operator's decision, in the config)."""
        cap = self.cfg.retention.hard_cap_minutes
        default = self.default_retention_minutes
        if minutes is None:
            minutes = default
        if minutes < 1 or minutes > cap:
            raise UserFacingError("bad_retention", f"Retention must be 1 to {cap} minutes.",
                                  status=400, remedy=f"Pick a value from 1 to {cap}.")
        if minutes > default and not operator:
            raise UserFacingError(
                "retention_operator_only", f"Photos are kept at most {default} minutes; only "
                "the operator can keep them longer.", status=403,
                remedy=f"Pick 1 to {default} minutes, or leave retention out.")
        return minutes * 60

    def _next_expiry_s(self, jobs: Any, now: float) -> int:
        """Seconds until the first of ``jobs`` expires: an honest Retry-After."""
        due = [job.expires_at - now for job in jobs]
        return max(1, math.ceil(min(due))) if due else 60

    def _check_room(self, session: Session | None, now: float, what: str) -> None:
        """Refuse (429) before anything is made when the booth or this session is full.

        ``what``: "photo" or "job". Photos and jobs (failed ones too, until they are cleared)
        share the store's ``max_jobs``; a session may hold SESSION_MAX_PHOTOS photos,
        SESSION_MAX_JOBS jobs and a third of the store's bytes.
        """
        limit = self.cfg.store.max_jobs
        held_items: list[Any] = [*self._jobs.values(), *self._photos.values()]
        if len(held_items) >= limit:
            retry = self._next_expiry_s(held_items, now)
            audit("request_refused", reason="store_full")
            raise UserFacingError(
                "store_full", f"The booth's memory for photos is full ({limit} photos and "
                "jobs).", status=429, retry_after_s=retry,
                remedy=f"Try again in about {retry} seconds, when earlier photos have expired.")
        if session is None:
            return
        jobs = [self._jobs[j] for j in session.job_ids if j in self._jobs]
        photos = [self._photos[p] for p in session.photo_ids if p in self._photos]
        mine: list[Any] = [*jobs, *photos]
        held = sum(self._stored_bytes(str(item.id)) for item in mine)
        count, most = (len(photos), SESSION_MAX_PHOTOS) if what == "photo" else (
            len(jobs), SESSION_MAX_JOBS)
        if count >= most or held >= self.cfg.store.quota_bytes // SESSION_STORE_SHARE:
            retry = self._next_expiry_s(mine, now)
            audit("request_refused", reason="session_full")
            raise UserFacingError(
                "session_full", f"This session already holds {len(photos)} photos and "
                f"{len(jobs)} results, the most one guest may keep at the booth at once.",
                status=429, retry_after_s=retry,
                remedy="Delete photos you no longer need (or wait for them to expire), then "
                       "try again.")

    def _stored_bytes(self, job_id: str) -> int:
        bytes_of = getattr(self.store, "bytes_of", None)
        return int(bytes_of(job_id)) if bytes_of is not None else 0

    def create_job(self, token: str | None, kind: str, *,
                   retention_minutes: int | None = None,
                   params: dict[str, Any] | None = None,
                   photo_ids: list[str] | None = None,
                   operator: bool = False, kiosk: bool = True) -> tuple[Job, str | None]:
        """Admit a job and give it a fresh key; returns (job, new session token or None).

        ``token`` adds the job to that session (403 when it is not valid); without one, a new
        session is made, but only once the queue and the store have room, so a refused
        request leaves no session behind. ``photo_ids`` (an effect job) must name ready photos
        of that session (404 ``photo_not_found`` otherwise, whoever's they are). Audited:
        job_created, and consent_given unless the job's photos carried it.
        """
        keep_s = self.retention_seconds(retention_minutes, operator=operator)
        now = self.clock()
        with self._lock:
            session = self._find_session(token, now) if token else None
            if token and session is None:
                raise _token_invalid()
            if photo_ids is not None:
                if session is None:
                    raise token_required()
                for index, photo_id in enumerate(photo_ids):
                    photo = self._photos.get(photo_id)
                    if photo is None or photo.session_id != session.id or not photo.ready:
                        raise photo_gone(index)
            waiting = sum(1 for j in self._jobs.values()
                          if j.state in (JobState.QUEUED, JobState.RUNNING))
            # Phones leave one place free for the guest at the kiosk (fairness).
            room = self.cfg.queue.depth - (0 if kiosk or self.cfg.queue.depth == 1 else 1)
            if waiting >= room:
                retry = max(1, round(self._run_seconds * waiting))
                audit("request_refused", reason="queue_full")
                raise UserFacingError("queue_full", "The booth is busy with other guests' "
                                      "photos.", status=429, retry_after_s=retry,
                                      remedy=f"Try again in about {retry} seconds.")
            self._check_room(session, now, "job")
            job = Job(id=new_job_id(), session_id="", kind=kind, created_at=now,
                      expires_at=now + keep_s, params=dict(params or {}),
                      photo_ids=list(photo_ids or []))
            session, secret = self._admit(job, session, now)
            job.kiosk = kiosk
            job.on_change = self._changed
            self._jobs[job.id] = job
            session.job_ids.add(job.id)
            session.extend_to(job.expires_at)
        audit("job_created", job_id=job.id, kind=kind, retention_s=keep_s)
        if photo_ids is None:  # an effect job's consent was given with each of its photos
            audit("consent_given", job_id=job.id, attestation="adults-consenting")
        return job, secret

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(job_id)`` after every change of a job's state, progress, outputs or
        queue place (the progress hub's wake-up). It must return at once and take no lock."""
        with self._lock:
            self._watchers.append(callback)

    def _changed(self, job_id: str) -> None:
        for callback in list(self._watchers):
            try:
                callback(job_id)
            except Exception as exc:  # a watcher's bug must never stop a job
                log.error("job watcher failed: %s", type(exc).__name__)

    def queue_position(self, job_id: str) -> int | None:
        """Where a waiting job stands (1: next); None once it runs or is gone."""
        return self._queue.position(job_id)

    def enqueue(self, job: Job, work: JobWork) -> None:
        """Hand a received job to the worker; jobs run one at a time in arrival order."""
        with self._lock:
            self._work[job.id] = work
        job.set_progress("queued", 0.0)
        self._queue.put(job.id, kiosk=job.kiosk)

    def _work_loop(self) -> None:
        lower_current_thread(self.cfg.models.background_nice)  # pages first (thread_priority)
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self._jobs.get(job_id)
                work = self._work.pop(job_id, None)
            if job is None or work is None:
                continue
            with job.lock:
                if job.state is not JobState.QUEUED or job.release_requested:
                    continue
                job.move_to(JobState.RUNNING)
            self._run(job, work)
            if job.release_requested:
                self.release_job(job.id, job.release_requested)

    def _run(self, job: Job, work: JobWork) -> None:
        started = time.monotonic()
        failure: UserFacingError | None = None
        with self._models_lock:
            try:
                work(job)
                self._release_inputs(job)
                job.set_progress("done", 1.0)
                job.move_to(JobState.DONE)
            except UserFacingError as exc:
                exc.__traceback__ = None  # its frames hold the job's pixels (see _fail)
                failure = exc.detached()
            except Exception as exc:  # never image data in a log: the type and the job id only
                log.error("job %s failed: %s", job.id, type(exc).__name__)
                exc.__traceback__ = None
                failure = UserFacingError(
                    "internal_error", "Something went wrong while making your picture.",
                    status=500, remedy="Try again; if it keeps happening, tell the operator.")
            finally:
                self._zeroise_models()
            # Failed only outside the except blocks: until they end, Python 3.10 keeps the
            # traceback (and the frames holding the job's pixels) in the thread's exception
            # state, whatever __traceback__ says, so the wipe could not unmap them yet.
            if failure is not None:
                self._fail(job, failure)
        elapsed = time.monotonic() - started
        self._run_seconds = 0.7 * self._run_seconds + 0.3 * elapsed

    @staticmethod
    def _release_inputs(job: Job) -> None:
        """A done job needs only its key (its results are encrypted in the store): the upload
        and decoded pixels go now, not at the end of retention, and with them their share of
        the decoded-bytes budget."""
        job.images.clear()
        for buffer in REGISTRY.live(job.id):
            if buffer.label != KEY_LABEL:
                buffer.release()

    def _fail(self, job: Job, error: UserFacingError) -> None:
        """A failed job keeps only its error, detached from the traceback (whose frames hold
        the job's pixels): its image data is wiped and unmapped at once, not at the next
        garbage collection."""
        with job.lock:
            job.error = error.detached()
            job.stage = "failed"
            job.move_to(JobState.FAILED)
            # Its slot (it counts against store.max_jobs and the session) is freed soon.
            job.expires_at = min(job.expires_at, self.clock() + FAILED_KEEP_S)
            for output in job.outputs.values():  # wiped below with the rest of the job
                output.ready, output.nbytes = False, 0
        audit("job_failed", job_id=job.id, reason=error.code)
        self._wipe_data(job)

    def fail_received(self, job: Job, error: UserFacingError, *,
                      new_session: bool = False) -> None:
        """The upload itself was bad: release the job entirely; the caller raises ``error``.

        ``new_session``: the session was made for this request and its token never reached
        the client, so it goes too.
        """
        audit("request_refused", job_id=job.id, reason=error.code)
        self.release_job(job.id, "refused")
        if new_session:
            self._drop_if_unused(job.session_id)

    # -- access -----------------------------------------------------------------------------

    def job_for_session(self, job_id: str, token: str | None) -> Job:
        """The job if ``token`` is its session's token; 401/403/404 otherwise."""
        now = self.clock()
        with self._lock:
            session = self._session_or_raise(token, now)
            job = self._jobs.get(job_id)
            if job is None or job.session_id != session.id or job.state is JobState.RELEASED:
                raise _not_found()
            return job

    def job_for_download(self, job_id: str, token: str, *, spend: bool = True) -> Job:
        """The job a one-time download token is for; 403 whatever is wrong with the token.

        ``spend=False`` only checks it: a link opened before the result is ready, or fetched by
        a link preview (HEAD), must still work when the guest opens it; the caller spends it
        with ``spend_download`` once the result's bytes are about to be sent.
        """
        now = self.clock()
        with self._lock:
            job = self._jobs.get(job_id)
            candidates = job.download_tokens if job is not None else []
            check = (lambda t: t.redeem(token, now)) if spend else (
                lambda t: t.matches(token, now))
            if not any([check(t) for t in candidates]) or job is None:
                raise _token_invalid()
            return job

    def spend_download(self, job: Job, token: str) -> None:
        """Spend a download token of ``job`` now (its bytes go out); 403 if another request
        spent it first (two phones racing for one QR code: one gets the picture)."""
        now = self.clock()
        with self._lock, job.lock:
            if not any([t.redeem(token, now) for t in job.download_tokens]):
                raise _token_invalid()

    def issue_download_token(self, job: Job) -> tuple[str, int]:
        """A one-time token for this job's result (the kiosk's QR code)."""
        now = self.clock()
        expires = min(job.expires_at, now + DOWNLOAD_TOKEN_TTL_S)
        secret, capability = CapabilityToken.issue(expires, single_use=True)
        with job.lock:
            job.download_tokens = [t for t in job.download_tokens
                                   if not t.used and t.expires_at > now]
            job.download_tokens.append(capability)
        return secret, max(0, int(expires - now))

    # -- release ----------------------------------------------------------------------------

    def release_job(self, job_id: str, reason: str = "deleted") -> bool:
        """Wipe everything of one job. Idempotent; a running job is released when it stops."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            with job.lock:
                if job.state is JobState.RELEASED:
                    return False
                if job.state is JobState.RUNNING:
                    job.release_requested = job.release_requested or reason
                    return True
                job.state = JobState.RELEASED  # from any other state: release always wins
                job.stage = "released"
            self._queue.discard(job_id)  # a waiting job leaves the queue (positions move up)
            self._jobs.pop(job_id, None)
            self._work.pop(job_id, None)
            session = self._sessions.get(job.session_id)
            if session is not None:
                session.job_ids.discard(job_id)
        self._wipe_data(job)
        with self._models_lock:
            self._zeroise_models()
        job.download_tokens.clear()
        job.wiped.set()
        self._changed(job_id)  # its streams say it is gone; the queue behind it moved up
        event = {"expired": "job_expired"}.get(reason, "job_deleted")
        audit(event, job_id=job_id, reason=reason)
        return True

    def wait_wiped(self, job: Job, timeout_s: float) -> bool:
        """Wait until a released job's data is gone (a running job finishes its step first)."""
        return job.wiped.wait(timeout_s)

    def _wipe_data(self, job: Job) -> None:
        """Buffers, stored blobs and the key of one job; each step runs even if one fails."""
        job.images.clear()
        REGISTRY.release_owner(job.id)
        try:
            self.store.delete_job(job.id)
        except Exception as exc:
            log.error("job %s: store delete failed: %s", job.id, type(exc).__name__)
        key, job.key = job.key, None
        if key is not None:
            key.release()

    def _zeroise_models(self) -> None:
        try:
            self.models.zeroise_all()
        except Exception as exc:
            log.error("zeroising the models failed: %s", type(exc).__name__)

    def release_all(self, reason: str = "shutdown") -> int:
        """Release every job and photo (shutdown, purge); returns how many jobs were released."""
        with self._lock:
            ids = list(self._jobs)
            photo_ids = list(self._photos)
        released = sum(1 for job_id in ids if self.release_job(job_id, reason))
        for photo_id in photo_ids:
            self.release_photo(photo_id, reason)
        return released

    def sweep_expired(self) -> int:
        """Release jobs and photos past their retention and forget dead sessions; returns jobs
        released."""
        now = self.clock()
        with self._lock:
            expired = [j.id for j in self._jobs.values() if j.expires_at <= now]
            old_photos = [p.id for p in self._photos.values() if p.expires_at <= now]
        for photo_id in old_photos:
            self.release_photo(photo_id, "expired")
        released = sum(1 for job_id in expired if self.release_job(job_id, "expired"))
        with self._lock:
            for session_id, session in list(self._sessions.items()):
                if session.empty and session.token.expires_at <= now:
                    del self._sessions[session_id]
        return released

    def _sweep_loop(self, interval_s: float) -> None:
        while not self._stopping.wait(interval_s):
            try:
                self.sweep_expired()
            except Exception as exc:
                log.error("retention sweep failed: %s", type(exc).__name__)

    # -- health and shutdown ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts for health pages and tests: never contents, never tokens."""
        with self._lock:
            states: dict[str, int] = {}
            for job in self._jobs.values():
                states[job.state.value] = states.get(job.state.value, 0) + 1
            return {"jobs": len(self._jobs), "states": states, "sessions": len(self._sessions),
                    "photos": len(self._photos), "queue_depth": self.cfg.queue.depth}

    def is_full(self) -> bool:
        """True while a new guest would get ``store_full`` (for /healthz)."""
        with self._lock:
            items_full = len(self._jobs) + len(self._photos) >= self.cfg.store.max_jobs
        usage = getattr(self.store, "usage", None)
        if usage is None:
            return items_full
        counts = usage()
        return items_full or counts["bytes"] >= counts["quota_bytes"] or (
            counts["jobs"] >= counts["max_jobs"])

    def worker_alive(self) -> bool:
        """Whether the job thread is running (the service's watchdog pings only while it is)."""
        return self._worker.is_alive() and not self._stopping.is_set()

    def close(self) -> None:
        """Stop the threads and release everything (the worker finishes its current job)."""
        self._stopping.set()
        self._queue.put(None)
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout=30)
        self.release_all("shutdown")
