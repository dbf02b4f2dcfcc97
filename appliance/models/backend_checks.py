"""`ephemera doctor` checks of inference: which backend each model runs on, and ONNX Runtime's
arena (off, so activations do not outlive a run).

Why a check: on a Jetson, "the booth is slow" usually means a model fell back to the CPU
because its engine was never built or no longer matches (a JetPack upgrade). This line says so
and names the fix, before a guest notices.
"""

from __future__ import annotations

from appliance.config import Config
from appliance.doctor import CheckResult, check
from appliance.models.engines import backend_kind, engine_for
from appliance.models.manifest import load_manifest
from appliance.models.tensorrt_support import TensorRTUnavailableError, import_tensorrt


@check("inference backend")
def inference_backend(cfg: Config) -> CheckResult:
    configured = cfg.models.backend
    manifest = load_manifest()
    count = len(manifest.models)
    if configured == "onnxruntime":
        return CheckResult(True, f"ONNX Runtime on the CPU for all {count} models (configured)")
    try:
        import_tensorrt()
    except TensorRTUnavailableError as exc:
        if configured == "tensorrt":
            return CheckResult(False, f"models.backend = 'tensorrt' but {exc}",
                               "install TensorRT (JetPack) or set models.backend = 'auto'")
        return CheckResult(True, f"ONNX Runtime on the CPU for all {count} models "
                                 "(TensorRT is not importable here)")
    # Graphs with dynamic shapes stay on ONNX Runtime (the TensorRT backend binds fixed shapes).
    dynamic = [name for name, entry in manifest.models.items() if entry.profiles]
    if configured == "tensorrt":  # no fallback: each model needs its engine to load at all
        missing = [name for name, entry in manifest.models.items()
                   if not entry.profiles and engine_for(entry, cfg) is None]
    else:
        missing = [name for name in manifest.models
                   if name not in dynamic and backend_kind(cfg, name, manifest) != "tensorrt"]
    if not missing:
        if dynamic:
            return CheckResult(True, f"TensorRT engines for {count - len(dynamic)} models; "
                                     f"ONNX Runtime for the dynamic-shape graphs "
                                     f"{', '.join(dynamic)}")
        return CheckResult(True, f"TensorRT engines for all {count} models")
    detail = (f"TensorRT for {count - len(missing)} of {count} models; no accepted engine for "
              f"this device for: {', '.join(missing)}")
    if configured == "tensorrt":
        return CheckResult(False, detail + " (they will not load)", "run `ephemera build`")
    return CheckResult(False, detail + " (they run on ONNX Runtime)",
                       "run `ephemera build` (needed after every JetPack upgrade)", warning=True)


@check("onnxruntime_arena")
def onnxruntime_arena(cfg: Config) -> CheckResult:
    """The CPU arena would keep whole intermediate activations readable after run()."""
    try:
        from appliance.models.onnxruntime_backend import session_options
    except ImportError as exc:
        return CheckResult(False, f"ONNX Runtime backend not importable: {exc}",
                           "install onnxruntime (pip install -e .)")
    options = session_options(1)
    if options.enable_cpu_mem_arena:
        return CheckResult(False, "ONNX Runtime sessions keep the CPU arena: activations "
                                  "outlive run()", "report this as a bug")
    return CheckResult(True, "ONNX Runtime sessions run without the CPU arena (freed "
                             "activations go to the allocator's overwrite)")
