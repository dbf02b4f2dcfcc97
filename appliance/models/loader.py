"""Open the booth's models on the right backend, once, and wipe them all in one call.

Which backend (``models.backend``; decided by ``appliance.models.engines.backend_kind``, which
``ephemera build --list`` and ``ephemera doctor`` ask too):

* ``onnxruntime``: always ONNX Runtime on the CPU.
* ``tensorrt``: always TensorRT; a model without an accepted engine for this device is an error
  that says to run ``ephemera build``.
* ``auto`` (default): per model, TensorRT only where ``tensorrt`` and ``pycuda`` import *and*
  an accepted engine (built here, validated against ONNX Runtime, key = this ONNX file, this
  TensorRT, this GPU) exists; otherwise ONNX Runtime. A laptop and a Jetson whose engines have
  not been built yet therefore both work, on the CPU.

The manifest is the one shipped with the code (``engines/models.toml``), never a file next to
the writable engines: it pins every model's sha256, and each backend refuses a file whose hash
differs (for engines, the hash recorded in the sidecar when the engine was built and validated).
"""

from __future__ import annotations

import threading

from appliance.config import Config
from appliance.models.backend import Backend, BackendError
from appliance.models.engines import backend_kind, engine_for
from appliance.models.manifest import Manifest, ModelEntry, load_manifest
from appliance.models.onnxruntime_backend import OnnxRuntimeBackend, default_threads
from appliance.models.tensorrt_support import import_tensorrt
from appliance.models.thread_priority import threads_started_here_lowered


def _entry(manifest: Manifest, name: str) -> ModelEntry:
    try:
        return manifest.models[name]
    except KeyError:
        raise BackendError(f"unknown model {name!r}; the manifest {manifest.path} has: "
                           + ", ".join(sorted(manifest.models))) from None


def open_backend(name: str, cfg: Config, manifest: Manifest | None = None) -> Backend:
    """Open one model of the manifest on the backend ``backend_kind`` picks for it."""
    manifest = manifest or load_manifest()
    entry = _entry(manifest, name)
    backend: Backend
    if backend_kind(cfg, name, manifest) == "tensorrt":
        import_tensorrt()  # configured "tensorrt" without TensorRT: say so plainly
        engine = engine_for(entry, cfg)
        if engine is None:
            raise BackendError(
                f"models.backend = 'tensorrt' but there is no accepted TensorRT engine for "
                f"{name} on this device (after a JetPack upgrade every engine is rebuilt); run "
                "`ephemera build`, or set models.backend = 'auto' to use ONNX Runtime meanwhile")
        from appliance.models.tensorrt_backend import TensorRTBackend

        backend = TensorRTBackend(engine[0], engine[1], name)
    else:
        threads = default_threads()
        if entry.cpu_threads:
            threads = min(threads, entry.cpu_threads)
        with threads_started_here_lowered(cfg.models.background_nice):
            backend = OnnxRuntimeBackend(entry.onnx_path(cfg.models.engines_dir),
                                         entry.onnx_sha256, name, threads=threads,
                                         profiles=entry.profiles)
    try:
        _check_tensors(entry, backend)
    except BackendError:
        backend.close()
        raise
    return backend


def _check_tensors(entry: ModelEntry, backend: Backend) -> None:
    """The pre- and post-processing trust the manifest's shapes: the model must agree."""
    for kind, declared, actual in (("inputs", entry.inputs, backend.inputs),
                                   ("outputs", entry.outputs, backend.outputs)):
        want = sorted((t.name, tuple(t.spec().shape)) for t in declared)  # named dims: -1
        got = sorted((t.name, tuple(t.shape)) for t in actual)
        if want != got:
            raise BackendError(f"model {entry.name}: its {kind} {got} differ from the "
                               f"manifest's {want}; rebuild it with `ephemera build --force`")


class ModelSet:
    """The booth's open models: opened on first use, shared by jobs, wiped together.

    A backend owns one set of buffers, so a model must serve one job at a time (the job queue
    guarantees that); ``get`` itself is safe to call from several threads.
    """

    def __init__(self, cfg: Config, manifest: Manifest | None = None) -> None:
        self.cfg = cfg
        self._manifest = manifest
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = load_manifest()
        return self._manifest

    def get(self, name: str) -> Backend:
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = open_backend(name, self.cfg, self.manifest)
                self._backends[name] = backend
            return backend

    def kinds(self) -> dict[str, str]:
        """Which backend each open model runs on (for the health page)."""
        with self._lock:
            return {name: backend.name for name, backend in self._backends.items()}

    def zeroise_all(self) -> None:
        """Overwrite every open model's inputs, outputs and activations (after each job)."""
        with self._lock:
            backends = list(self._backends.values())
        for backend in backends:
            backend.zeroise()

    def close(self) -> None:
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            backend.close()

    def __enter__(self) -> ModelSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
