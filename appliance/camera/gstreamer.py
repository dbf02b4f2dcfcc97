"""A GStreamer camera: ``gst-launch-1.0`` in a child process, raw frames through pipes.

Why a child process and pipes: a camera driver or plugin that crashes takes down only the
child, which the supervisor restarts with back-off; frames cross a pipe (``fdsink`` on an
inherited descriptor) straight into secure buffers with ``readinto``, never through a file.
One pipeline, two streams split by ``tee``: a small preview at ``preview_fps`` and the
full-resolution stream at ``still_fps`` from which a capture takes the first frame after the
button was pressed. The leaky queues mean a slow reader drops frames instead of stalling the
camera.

The source part is configuration (``camera.pipeline``) with defaults per device: a Jetson's CSI
camera through ``nvarguscamerasrc``, otherwise a USB webcam through ``v4l2src``; tests and the
bench use ``videotestsrc`` through exactly the same code.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from appliance.camera.base import CameraFaultError, CameraSource, Capture, camera_unavailable
from appliance.camera.frames import FrameSlot
from appliance.camera.registry import SourcePlugin
from appliance.config import Config
from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY, SecureBuffer

GST_LAUNCH = "gst-launch-1.0"
JETSON_MARKER = Path("/etc/nv_tegra_release")
PREVIEW_JPEG_QUALITY = 80
STALL_MIN_S = 3.0


def default_source(cfg: Config) -> str:
    """The source fragment when ``camera.pipeline`` is empty: CSI on a Jetson, else USB."""
    width, height = cfg.camera.still_size
    if JETSON_MARKER.exists():
        return (f"nvarguscamerasrc ! video/x-raw(memory:NVMM),width={width},height={height}"
                " ! nvvidconv")
    return "v4l2src device=/dev/video0"


def build_pipeline(cfg: Config, preview_fd: int, still_fd: int) -> str:
    """The whole gst-launch description: the configured source, then our caps and sinks.

    gst-launch-1.0 quotes an argument that holds spaces, so the caller splits this into words
    (``shlex.split``) rather than passing one string."""
    source = cfg.camera.pipeline.strip() or default_source(cfg)
    width, height = cfg.camera.still_size
    pw, ph = cfg.camera.preview_size
    return (
        f"{source} ! videoconvert ! videoscale ! "
        f"video/x-raw,format=BGR,width={width},height={height} ! tee name=split "
        f"split. ! queue leaky=downstream max-size-buffers=1 ! "
        f"videorate drop-only=true max-rate={cfg.camera.preview_fps} ! videoscale ! "
        f"video/x-raw,width={pw},height={ph} ! fdsink fd={preview_fd} sync=false "
        f"split. ! queue leaky=downstream max-size-buffers=1 ! "
        f"videorate drop-only=true max-rate={cfg.camera.still_fps} ! "
        f"fdsink fd={still_fd} sync=false"
    )


def pipeline_env(cfg: Config) -> dict[str, str]:
    """The child's environment: GStreamer's plugin registry cache and ORC's code files go to
    tmpfs beside the RAM store (by default under ~/.cache and ~, on the flash); no debug
    dumps."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("GST_DEBUG", "GST_TRACERS"))}
    runtime = Path(cfg.store.path).parent  # tmpfs, checked at start-up
    env["GST_REGISTRY"] = str(runtime / "gstreamer-registry.bin")
    # ORC (GStreamer's SIMD compiler) maps its generated code through a temporary file in
    # XDG_RUNTIME_DIR, else HOME (seen under strace: /root/orcexec.*): keep it on tmpfs.
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


class GStreamerSource(CameraSource):
    name = "gstreamer"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        width, height = cfg.camera.still_size
        pw, ph = cfg.camera.preview_size
        self.preview = FrameSlot(pw, ph, "camera-preview")
        self.still = FrameSlot(width, height, "camera-still")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._proc_lock = threading.Lock()

    # -- the device session ------------------------------------------------------------------

    def _session(self) -> None:
        if shutil.which(GST_LAUNCH) is None:
            raise CameraFaultError(f"{GST_LAUNCH} is not installed "
                                   "(apt install gstreamer1.0-tools)")
        preview_r, preview_w = os.pipe()
        still_r, still_w = os.pipe()
        description = build_pipeline(self.cfg, preview_w, still_w)
        self._stderr.clear()
        for slot in (self.preview, self.still):
            slot.broken = ""
        try:
            proc = subprocess.Popen(
                [GST_LAUNCH, "-q", *shlex.split(description)], pass_fds=(preview_w, still_w),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True, env=pipeline_env(self.cfg))
        finally:
            os.close(preview_w)
            os.close(still_w)
        with self._proc_lock:
            self._proc = proc
        readers = [
            threading.Thread(target=self._read, args=(self.preview, preview_r, True),
                             name="camera-preview", daemon=True),
            threading.Thread(target=self._read, args=(self.still, still_r, False),
                             name="camera-still", daemon=True),
            threading.Thread(target=self._collect_stderr, args=(proc,), name="camera-log",
                             daemon=True),
        ]
        for thread in readers:
            thread.start()
        stall_s = max(STALL_MIN_S, 3.0 / min(self.cfg.camera.preview_fps,
                                             self.cfg.camera.still_fps))
        started = time.monotonic()
        while not self._stop.is_set():
            if proc.poll() is not None or self.preview.broken or self.still.broken:
                break
            last = max(self.preview.at, started)
            if time.monotonic() - last > stall_s + (10.0 if not self._was_live else 0.0):
                self._stderr.append(f"no frame for {stall_s:.0f} s: restarting the pipeline")
                break
            if self.preview.seq and self.still.seq and not self._was_live:
                self._live()
            self._stop.wait(0.05)
        self._kill()
        for thread in readers:
            thread.join(timeout=5)
        if not self._stop.is_set():
            raise CameraFaultError(self._error_text(proc))

    def _read(self, slot: FrameSlot, fd: int, counts: bool) -> None:
        stream = io.FileIO(fd, "rb", closefd=True)
        try:
            while slot.read_from(stream):
                if counts:
                    self.frames += 1
        except (OSError, ValueError):
            pass
        finally:
            stream.close()
            slot.mark_broken("the pipeline stopped")
            if not self._stop.is_set():
                self._lost()  # the kiosk reads "reconnecting" at once

    def _collect_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._stderr.append(line)

    def _error_text(self, proc: subprocess.Popen[bytes]) -> str:
        lines = list(self._stderr)
        # The element's own message names the device ("Cannot identify device ..."); the
        # pipeline's closing "doesn't want to preroll" says less.
        causes = [line for line in lines if "from element" in line or "erroneous" in line
                  or "restarting" in line]
        errors = causes or [line for line in lines if "ERROR" in line] or lines or [""]
        detail = errors[0] if causes else errors[-1]
        code = proc.returncode
        how = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exited with status {code}")
        return f"pipeline {how}" + (f": {detail}" if detail else "")

    def _kill(self) -> None:
        with self._proc_lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=3)

    def _interrupt(self) -> None:
        self._kill()

    def _cleanup_session(self) -> None:
        self._kill()
        with self._proc_lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()

    def _release_frames(self) -> None:
        self.preview.release()
        self.still.release()

    @property
    def pid(self) -> int | None:
        """The pipeline's process id (fault-injection tests kill it)."""
        with self._proc_lock:
            return self._proc.pid if self._proc is not None else None

    # -- what the booth asks for ---------------------------------------------------------------

    def capture(self, owner: str) -> Capture:
        """The first full-resolution frame that starts after the call, copied for ``owner``."""
        if not self.is_live:
            raise camera_unavailable(self.state()["last_error"] or "starting")
        asked = self.still.seq
        deadline = time.monotonic() + self.cfg.camera.capture_timeout_s
        # A frame already in the pipe when the button was pressed may predate it: take the
        # second one that arrives, so the still shows the pose after the countdown.
        for wanted in (asked + 1, asked + 2):
            left = deadline - time.monotonic()
            if left <= 0 or not self.still.wait_newer(wanted - 1, left) or self.still.broken:
                raise camera_unavailable(self.still.broken or "no frame in time")
        buffer, pixels = REGISTRY.array((self.still.height, self.still.width, 3), np.uint8,
                                        owner=owner, label="capture")
        try:
            self.still.copy_latest(pixels)
        except Exception:
            buffer.release()
            raise
        return Capture(buffer, "image/x-raw-bgr", self.still.width, self.still.height)

    def preview_jpeg(self, owner: str) -> SecureBuffer:
        if not self.is_live or self.preview.seq == 0:
            raise camera_unavailable(self.state()["last_error"] or "starting")
        buffer, frame = REGISTRY.array((self.preview.height, self.preview.width, 3), np.uint8,
                                       owner=owner, label="preview")
        try:
            self.preview.copy_latest(frame)
            jpeg, view = encode_image(frame, "jpeg", owner, PREVIEW_JPEG_QUALITY)
            view.release()
            return jpeg
        finally:
            buffer.release()

    def _details(self) -> dict[str, Any]:
        width, height = self.cfg.camera.still_size
        return {"still_size": [width, height], "preview_size": list(self.cfg.camera.preview_size),
                "pipeline": (self.cfg.camera.pipeline.strip() or default_source(self.cfg))}


SOURCE = SourcePlugin("gstreamer", "a GStreamer pipeline: Jetson CSI (nvarguscamerasrc) or "
                                   "USB (v4l2src)", GStreamerSource)
