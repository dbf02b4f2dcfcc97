"""What both the TensorRT backend and the engine builder need: imports, the device, a logger.

Why lazy imports: TensorRT and pycuda exist only on a Jetson (JetPack's python3-libnvinfer and
the ``device`` extra). Everything else must import this package without them, and say plainly
when they are missing instead of failing with an ImportError deep in a job.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from appliance.models.backend import BackendError

log = logging.getLogger("ephemera.tensorrt")


class TensorRTUnavailableError(BackendError):
    """TensorRT or pycuda cannot be imported (or no CUDA device answers) on this machine."""


def import_tensorrt() -> tuple[Any, Any]:
    """``(tensorrt, pycuda.driver)``, or TensorRTUnavailableError saying which one is missing."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise TensorRTUnavailableError(
            f"TensorRT is not importable here ({exc}); models run on the CPU with ONNX Runtime. "
            "On a Jetson install JetPack's python3-libnvinfer.") from None
    try:
        cuda = importlib.import_module("pycuda.driver")
    except ImportError as exc:
        raise TensorRTUnavailableError(
            f"pycuda is not importable here ({exc}); models run on the CPU with ONNX Runtime. "
            "On a Jetson install the device extra: pip install '.[device]'.") from None
    major = str(getattr(trt, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 10:
        raise TensorRTUnavailableError(
            f"TensorRT {getattr(trt, '__version__', '?')} is too old: the named-tensor API and "
            "user-managed activation memory need TensorRT 10 (JetPack 6)")
    return trt, cuda


def tensorrt_importable() -> bool:
    """Whether both TensorRT 10 and pycuda import (no device is touched)."""
    try:
        import_tensorrt()
    except TensorRTUnavailableError:
        return False
    return True


class CudaContext:
    """The device's primary CUDA context (the one TensorRT's runtime calls use).

    CUDA contexts are current per thread, and gunicorn may load a model in one thread and run it
    in another, so every block of CUDA work is wrapped in ``with context.current():``.
    """

    _lock = threading.Lock()
    _instances: ClassVar[dict[tuple[int, int], tuple[Any, CudaContext]]] = {}

    def __init__(self, cuda: Any, ordinal: int = 0) -> None:
        self.cuda = cuda
        cuda.init()
        self.device = cuda.Device(ordinal)
        self._context = self.device.retain_primary_context()

    @classmethod
    def shared(cls, cuda: Any, ordinal: int = 0) -> CudaContext:
        """One per driver module and device, for the life of the process."""
        with cls._lock:
            key = (id(cuda), ordinal)
            entry = cls._instances.get(key)
            if entry is None or entry[0] is not cuda:
                entry = (cuda, cls(cuda, ordinal))
                cls._instances[key] = entry
            return entry[1]

    @contextmanager
    def current(self) -> Iterator[None]:
        self._context.push()
        try:
            yield
        finally:
            self._context.pop()


@dataclass(frozen=True)
class DeviceInfo:
    """The facts an engine is tied to: it runs only where all of them are the same."""

    trt_version: str
    compute_capability: str  # "8.7" on Jetson Orin
    gpu_name: str

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")


def probe_device(trt: Any, cuda: Any) -> DeviceInfo:
    """TensorRT version and the GPU's compute capability, for engine cache keys."""
    try:
        context = CudaContext.shared(cuda)
        major, minor = context.device.compute_capability()
        name = str(context.device.name())
    except Exception as exc:  # pycuda raises its own error types when no device answers
        raise TensorRTUnavailableError(f"TensorRT is installed but no CUDA device answers ({exc}); "
                                  "models run on the CPU with ONNX Runtime") from None
    return DeviceInfo(str(trt.__version__), f"{major}.{minor}", name)


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps the errors (to explain a failure) and forwards the rest.

    TensorRT messages name layers and tensors, never data, so they are safe to log.
    """
    severity = trt.ILogger.Severity

    class RecordingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, level: Any, msg: str) -> None:
            if level in (severity.ERROR, severity.INTERNAL_ERROR):
                self.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif level == severity.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return RecordingLogger()
