"""One guest job and its state machine: queued -> running -> done | failed -> released.

Why a state machine: every screen (kiosk, phone, admin) shows the same few states, and release is
the one transition every path must reach (downloaded, deleted, expired, failed, shutdown). A job
holds no image data itself: its bytes live in secure buffers owned by ``job.id`` and in the
encrypted store, so releasing the owner wipes them whatever the state.
"""

from __future__ import annotations

import enum
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import UserFacingError
from appliance.jobs.tokens import CapabilityToken


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    RELEASED = "released"


ALLOWED = {
    JobState.QUEUED: {JobState.RUNNING, JobState.FAILED, JobState.RELEASED},
    JobState.RUNNING: {JobState.DONE, JobState.FAILED},
    JobState.DONE: {JobState.RELEASED},
    JobState.FAILED: {JobState.RELEASED},
    JobState.RELEASED: set(),
}


def new_job_id() -> str:
    """A random, unguessable id (128 bits): knowing one job's id says nothing about another."""
    return secrets.token_hex(16)


@dataclass
class ResultInfo:
    """What the owner may learn about a finished job: never pixels, never identities."""

    name: str  # the blob's name in the store
    content_type: str
    nbytes: int
    details: dict[str, Any] = field(default_factory=dict)  # e.g. {"faces": 1}


@dataclass
class OutputInfo:
    """One output of an effect job: listed from the start, ``ready`` once it is in the store."""

    name: str
    media_type: str
    title: str = ""
    ready: bool = False
    nbytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "media_type": self.media_type, "title": self.title,
                "ready": self.ready, "bytes": self.nbytes}


@dataclass
class Job:
    """A guest job. ``key`` is the job's AES key (appliance.secure.crypto.JobKey)."""

    id: str
    session_id: str
    kind: str
    created_at: float  # wall clock (time.time()) for display and audit
    expires_at: float  # wall clock; the retention sweeper releases the job then
    key: Any = None
    state: JobState = JobState.QUEUED
    stage: str = "receiving"
    progress: float = 0.0
    error: UserFacingError | None = None
    result: ResultInfo | None = None
    params: dict[str, Any] = field(default_factory=dict)
    images: list[Any] = field(default_factory=list)  # decoded inputs: views of secure buffers
    photo_ids: list[str] = field(default_factory=list)  # the session's photos, in order
    kiosk: bool = True  # from the kiosk (runs before phones' jobs) or from a phone on the LAN
    outputs: dict[str, OutputInfo] = field(default_factory=dict)  # in the effect's order
    download_tokens: list[CapabilityToken] = field(default_factory=list)
    release_requested: str = ""  # a reason, set when release must wait for the running work
    wiped: threading.Event = field(default_factory=threading.Event, repr=False)  # all released
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Told the job's id after every change of state, progress or outputs (the progress hub's
    # wake-up: see appliance/web/progress_hub.py). Must not block or take the job's lock.
    on_change: Callable[[str], None] | None = field(default=None, repr=False)

    def changed(self) -> None:
        """Tell whoever watches this job (streams to guests' screens) that its status moved."""
        if self.on_change is not None:
            self.on_change(self.id)

    def move_to(self, state: JobState) -> None:
        """Change state, refusing a transition the machine does not have (a bug, not input)."""
        with self.lock:
            if state not in ALLOWED[self.state]:
                raise RuntimeError(f"job {self.id}: {self.state.value} -> {state.value} "
                                   "is not a valid transition")
            self.state = state
        self.changed()

    def set_progress(self, stage: str, progress: float) -> None:
        with self.lock:
            self.stage = stage
            self.progress = max(self.progress, min(1.0, progress))
        self.changed()

    def status(self) -> dict[str, Any]:
        """The JSON the owner sees: state, progress, expiry and the result's non-image facts."""
        with self.lock:
            body: dict[str, Any] = {
                "job_id": self.id,
                "kind": self.kind,
                "state": self.state.value,
                "stage": self.stage,
                "progress": round(self.progress, 3),
                "created_at": round(self.created_at, 3),
                "expires_at": round(self.expires_at, 3),
            }
            if self.error is not None:
                body["error"] = self.error.to_json()
            if self.result is not None:
                body["result"] = {"content_type": self.result.content_type,
                                  "bytes": self.result.nbytes, **self.result.details}
            if self.photo_ids or self.outputs:
                body["effect"] = self.kind
                body["photos"] = list(self.photo_ids)
                body["params"] = dict(self.params)
                body["outputs"] = [output.to_json() for output in self.outputs.values()]
            return body

    def output(self, name: str) -> OutputInfo | None:
        with self.lock:
            return self.outputs.get(name)

    def mark_ready(self, name: str, media_type: str, nbytes: int) -> None:
        """An output is in the store: list it as ready (adding it if the effect named it late)."""
        with self.lock:
            info = self.outputs.get(name)
            if info is None:
                info = self.outputs[name] = OutputInfo(name, media_type)
            info.media_type, info.nbytes, info.ready = media_type, nbytes, True
        self.changed()
