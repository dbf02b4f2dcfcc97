"""What every camera source is: frames into secure buffers, a state the screens can read.

Why a supervisor in the base class: at an event the camera is what fails (unplugged, busy,
crashed). Every source runs its device in ``_session()``, which blocks while the camera works
and raises when it stops; the supervisor thread here catches that, records the error, waits
with exponential back-off and tries again. The kiosk reads ``state()`` ("reconnecting" instead
of a frozen picture); a capture that cannot be served raises ``camera_unavailable`` (503, with a
retry hint), never hangs the guest's screen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from appliance.config import Config
from appliance.errors import UserFacingError
from appliance.secure.buffers import SecureBuffer

BACKOFF_START_S = 0.5


class CameraFaultError(RuntimeError):
    """The device stopped working; the supervisor reconnects (message: the last error)."""


def camera_unavailable(reason: str) -> UserFacingError:
    """The guest's answer when a capture cannot be made now: try again in a moment."""
    return UserFacingError(
        "camera_unavailable", "The camera is reconnecting. Please try again in a moment.",
        status=503, retry_after_s=2,
        remedy=f"Press the button again when the camera is back ({reason}).")


@dataclass
class Capture:
    """A still in a secure buffer of the caller's owner: raw BGR pixels or the camera's JPEG."""

    buffer: SecureBuffer
    media_type: str  # "image/x-raw-bgr" or "image/jpeg"
    width: int
    height: int

    def pixels(self) -> Any:
        """H x W x 3 uint8 view of a raw capture."""
        return self.buffer.view(shape=(self.height, self.width, 3))


class CameraSource:
    """A camera kept alive by a supervisor thread; subclasses implement ``_session``."""

    name = "base"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._lock = threading.Condition()
        self._state = "stopped"
        self._since = time.time()
        self._last_error = ""
        self._last_error_at: float | None = None
        self._restarts = 0
        self._retry_in_s: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0  # preview frames received since start (never their contents)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._set_state("starting")
        self._thread = threading.Thread(target=self._supervise, name=f"camera-{self.name}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the device and wipe every frame buffer."""
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._set_state("stopped")
        self._release_frames()

    def _supervise(self) -> None:
        delay = BACKOFF_START_S
        while not self._stop.is_set():
            self._set_state("starting" if self._restarts == 0 else "reconnecting")
            try:
                self._session()
                if self._stop.is_set():
                    break
                raise CameraFaultError("the camera stopped sending frames")
            except Exception as exc:
                if self._stop.is_set():
                    break
                self._record_error(exc)
            finally:
                self._cleanup_session()
            if self._was_live:
                delay = BACKOFF_START_S  # it worked for a while: retry quickly
            with self._lock:
                self._restarts += 1
                self._retry_in_s = delay
                self._state = "reconnecting"
                self._since = time.time()
                self._lock.notify_all()
            self._stop.wait(delay)
            delay = min(delay * 2, self.cfg.camera.retry_max_s)

    # -- what subclasses provide -------------------------------------------------------------

    _was_live = False

    def _session(self) -> None:
        """Open the device, call ``_live()`` once frames flow, return or raise when it stops."""
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Make a running ``_session`` return soon (close.)"""

    def _cleanup_session(self) -> None:
        """Free the device after a session ended, however it ended."""

    def _release_frames(self) -> None:
        """Wipe and release frame buffers."""

    def capture(self, owner: str) -> Capture:
        """A fresh full-resolution still for ``owner``; raises ``camera_unavailable``."""
        raise NotImplementedError

    def preview_jpeg(self, owner: str) -> SecureBuffer:
        """The latest preview frame as JPEG in a secure buffer of ``owner``."""
        raise NotImplementedError

    # -- state -------------------------------------------------------------------------------

    def _live(self) -> None:
        with self._lock:
            self._was_live = True
            if self._state != "live":
                self._state = "live"
                self._since = time.time()
                self._retry_in_s = None
            self._lock.notify_all()

    def _lost(self) -> None:
        """Frames stopped: not live any more (the supervisor reconnects)."""
        with self._lock:
            if self._state == "live":
                self._state = "reconnecting"
                self._since = time.time()
                self._lock.notify_all()

    def _set_state(self, state: str) -> None:
        with self._lock:
            if state in ("starting", "reconnecting"):
                self._was_live = False
            self._state = state
            self._since = time.time()
            self._lock.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        with self._lock:
            self._last_error = message[:300]
            self._last_error_at = time.time()

    @property
    def is_live(self) -> bool:
        return self._state == "live"

    def wait_live(self, timeout: float) -> bool:
        """Block until frames flow (tests, the bench, doctor)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._state == "live", timeout=timeout)

    def state(self) -> dict[str, Any]:
        """For the kiosk (show "reconnecting"), the admin page and doctor: never pixels."""
        with self._lock:
            return {
                "source": self.name,
                "state": self._state,
                "ready": self._state == "live",
                "since": round(self._since, 3),
                "last_error": self._last_error or None,
                "last_error_at": (round(self._last_error_at, 3)
                                  if self._last_error_at is not None else None),
                "restarts": self._restarts,
                "retry_in_s": self._retry_in_s,
                "frames": self.frames,
                "server_side": True,  # the kiosk pulls frame.jpg and captures through us
                **self._details(),
            }

    def _details(self) -> dict[str, Any]:
        return {}
