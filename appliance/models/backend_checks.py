"""`ephemera doctor` check: which backend each model will run on, and why.

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
    if configured == "tensorrt":  # no fallback: each model needs its engine to load at all
        missing = [name for name, entry in manifest.models.items()
                   if engine_for(entry, cfg) is None]
    else:
        missing = [name for name in manifest.models
                   if backend_kind(cfg, name, manifest) != "tensorrt"]
    if not missing:
        return CheckResult(True, f"TensorRT engines for all {count} models")
    detail = (f"TensorRT for {count - len(missing)} of {count} models; no accepted engine for "
              f"this device for: {', '.join(missing)}")
    if configured == "tensorrt":
        return CheckResult(False, detail + " (they will not load)", "run `ephemera build`")
    return CheckResult(False, detail + " (they run on ONNX Runtime)",
                       "run `ephemera build` (needed after every JetPack upgrade)", warning=True)
