"""A DSLR or mirrorless camera through libgphoto2 (the ``gphoto2`` Python binding).

Why capture to RAM: a camera keeps every shot on its own memory card unless told otherwise,
and a card walks away with the camera. The session sets the ``capturetarget`` setting to the
camera's internal RAM before the first shot, downloads each still with ``file_get`` into memory
(copied at once into a secure buffer) and deletes it from the camera. Nothing is written to
the card or to our disk. A camera without that setting cannot promise it: the state says so and
``ephemera doctor`` warns.

libgphoto2 is not thread-safe, so the session thread owns the camera: it pulls live-view
frames for the preview and serves capture requests posted to it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from appliance.camera.base import CameraFaultError, CameraSource, Capture, camera_unavailable
from appliance.camera.registry import SourcePlugin
from appliance.config import Config
from appliance.secure.buffers import REGISTRY, SecureBuffer

RAM_WORDS = ("internal ram", "ram", "sdram", "memory")


def _import_gphoto2() -> Any:
    try:
        import gphoto2
    except ImportError as exc:
        raise CameraFaultError("the gphoto2 Python binding is not installed "
                          "(pip install gphoto2)") from exc
    return gphoto2


def set_capture_target_ram(gp: Any, camera: Any) -> str | None:
    """Point the camera's ``capturetarget`` at internal RAM; the choice set, or None."""
    config = camera.get_config()
    try:
        node = config.get_child_by_name("capturetarget")
    except gp.GPhoto2Error:
        return None
    choices = [node.get_choice(i) for i in range(node.count_choices())]
    for choice in choices:
        if choice.strip().lower() in RAM_WORDS:
            node.set_value(choice)
            camera.set_config(config)
            if camera.get_config().get_child_by_name("capturetarget").get_value() == choice:
                return str(choice)
    return None


def copy_file_data(camera_file: Any, owner: str, label: str) -> SecureBuffer:
    """A CameraFile's data (libgphoto2's memory) copied into a secure buffer of ``owner``."""
    data = memoryview(camera_file.get_data_and_size()).cast("B")
    try:
        buffer = REGISTRY.allocate(max(1, data.nbytes), owner=owner, label=label)
        with buffer.memoryview() as target:
            target[: data.nbytes] = data
        return buffer
    finally:
        data.release()


@dataclass
class _CaptureRequest:
    owner: str
    done: threading.Event = field(default_factory=threading.Event)
    result: Capture | None = None
    error: BaseException | None = None


class Gphoto2Source(CameraSource):
    name = "gphoto2"

    def __init__(self, cfg: Config, gp_module: Any = None) -> None:
        super().__init__(cfg)
        self._gp = gp_module
        self._requests: queue.Queue[_CaptureRequest] = queue.Queue()
        self._preview: SecureBuffer | None = None
        self._preview_lock = threading.Lock()
        self.capture_target: str | None = None
        self.model = ""

    def _session(self) -> None:
        gp = self._gp or _import_gphoto2()
        camera = gp.Camera()
        camera.init()
        self._camera = camera
        try:
            self.model = str(camera.get_summary()).splitlines()[0][:80]
            self.capture_target = set_capture_target_ram(gp, camera)
            period = 1.0 / self.cfg.camera.preview_fps
            while not self._stop.is_set():
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    request = None
                if request is not None:
                    self._serve(gp, camera, request)
                    continue
                started = time.monotonic()
                self._grab_preview(camera)
                self.frames += 1
                self._live()
                self._stop.wait(max(0.0, period - (time.monotonic() - started)))
        finally:
            self._camera = None
            self._fail_pending("the camera disconnected")
            with contextlib.suppress(Exception):
                camera.exit()

    def _grab_preview(self, camera: Any) -> None:
        camera_file = camera.capture_preview()
        fresh = copy_file_data(camera_file, "camera", "camera-preview")
        with self._preview_lock:
            old, self._preview = self._preview, fresh
        if old is not None:
            old.release()

    def _serve(self, gp: Any, camera: Any, request: _CaptureRequest) -> None:
        if self.capture_target is None:
            request.error = camera_unavailable(
                "this camera cannot capture to its internal RAM, so it is not used for photos")
            request.done.set()
            return
        try:
            path = camera.capture(gp.GP_CAPTURE_IMAGE)
            camera_file = camera.file_get(path.folder, path.name, gp.GP_FILE_TYPE_NORMAL)
            buffer = copy_file_data(camera_file, request.owner, "capture")
            with contextlib.suppress(gp.GPhoto2Error):  # RAM captures often vanish on download
                camera.file_delete(path.folder, path.name)
            request.result = Capture(buffer, "image/jpeg", 0, 0)
        except Exception as exc:
            request.error = exc
            raise
        finally:
            request.done.set()

    def _fail_pending(self, reason: str) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request.error = camera_unavailable(reason)
            request.done.set()

    def _release_frames(self) -> None:
        with self._preview_lock:
            old, self._preview = self._preview, None
        if old is not None:
            old.release()

    def capture(self, owner: str) -> Capture:
        if not self.is_live:
            raise camera_unavailable(self.state()["last_error"] or "starting")
        request = _CaptureRequest(owner)
        self._requests.put(request)
        if not request.done.wait(self.cfg.camera.capture_timeout_s + 10.0):
            raise camera_unavailable("the camera did not answer in time")
        if request.result is None:
            if isinstance(request.error, Exception) and hasattr(request.error, "status"):
                raise request.error
            raise camera_unavailable(str(request.error) or "the capture failed")
        return request.result

    def preview_jpeg(self, owner: str) -> SecureBuffer:
        with self._preview_lock:
            if not self.is_live or self._preview is None:
                raise camera_unavailable(self.state()["last_error"] or "starting")
            copy = REGISTRY.allocate(self._preview.nbytes, owner=owner, label="preview")
            with copy.memoryview() as target, self._preview.memoryview() as source:
                target[:] = source
            return copy

    def _details(self) -> dict[str, Any]:
        return {"capture_target": self.capture_target,
                "captures_to_ram": self.capture_target is not None, "model": self.model}


def probe_capture_target(gp_module: Any = None) -> tuple[bool, str]:
    """For doctor: can the connected camera capture to RAM? (ok, what was found)."""
    gp = gp_module or _import_gphoto2()
    camera = gp.Camera()
    try:
        camera.init()
    except gp.GPhoto2Error as exc:
        return False, f"no camera answered: {exc}"
    try:
        target = set_capture_target_ram(gp, camera)
        if target is None:
            return False, "the camera has no capture target for internal RAM"
        return True, f"capture target set to {target!r}"
    finally:
        camera.exit()


SOURCE = SourcePlugin("gphoto2", "a DSLR or mirrorless camera through libgphoto2, "
                                 "captures to the camera's RAM", Gphoto2Source)
