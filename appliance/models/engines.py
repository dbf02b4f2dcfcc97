"""Where a TensorRT engine lives, whether it is accepted here, and so which backend a model uses.

Why its own module: the builder (build time) writes engines and their sidecars; the loader,
``ephemera build --list`` and ``ephemera doctor`` (service and operator time) only need to know
whether an accepted engine for this device exists. Both read the same naming and acceptance
rules from here, and ``backend_kind`` is the one answer to "which backend runs this model".

An engine only runs on the TensorRT version and GPU it was built for, so its file name is its
key: the ONNX file's sha256, the TensorRT version, the GPU's compute capability, the precision
and the DLA core::

    <engines_dir>/trt/<model>.<onnx sha256[:16]>.trt<version>.sm<cc>.<fp16|fp32>[.dla<n>].engine
    <engines_dir>/trt/<same stem>.json        the sidecar: hashes, key, validation result
    <engines_dir>/trt/timing.trt<version>.sm<cc>.cache   one persistent timing cache
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.config import Config
from appliance.models.integrity import sha256_file
from appliance.models.manifest import Manifest, load_manifest
from appliance.models.tensorrt_support import (
    DeviceInfo,
    TensorRTUnavailableError,
    import_tensorrt,
    probe_device,
)

SIDECAR_FORMAT = 1


class ModelSpec(Protocol):
    """What the engine rules need of a manifest entry (``manifest.ModelEntry`` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def onnx_sha256(self) -> str: ...

    @property
    def precision(self) -> str: ...  # "fp16" (allowed) or "fp32"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; any change means a different file and a rebuild."""

    model: str
    onnx_sha256: str
    trt_version: str
    compute_capability: str
    precision: str
    dla_core: int | None = None

    @property
    def stem(self) -> str:
        parts = [self.model, self.onnx_sha256[:16], f"trt{self.trt_version}",
                 "sm" + self.compute_capability.replace(".", ""), self.precision]
        if self.dla_core is not None:
            parts.append(f"dla{self.dla_core}")
        return ".".join(parts)

    def engine_path(self, engines_dir: str | Path) -> Path:
        return engine_dir(engines_dir) / f"{self.stem}.engine"

    def sidecar_path(self, engines_dir: str | Path) -> Path:
        return engine_dir(engines_dir) / f"{self.stem}.json"


def engine_dir(engines_dir: str | Path) -> Path:
    return Path(engines_dir) / "trt"


def timing_cache_path(engines_dir: str | Path, device: DeviceInfo) -> Path:
    return engine_dir(engines_dir) / f"timing.trt{device.trt_version}.{device.sm}.cache"


def plan_key(spec: ModelSpec, device: DeviceInfo, dla_core: int | None = None,
             fast_fp16: bool = True) -> tuple[EngineKey, str]:
    """The key to build for this model here, and a note when a wish could not be granted."""
    note = ""
    precision = "fp16" if spec.precision == "fp16" and fast_fp16 else "fp32"
    if spec.precision == "fp16" and not fast_fp16:
        note = "this GPU has no fast FP16; building FP32"
    if dla_core is not None and precision != "fp16":
        note = "DLA runs FP16 or INT8 only and this model is FP32: building for the GPU"
        dla_core = None
    return EngineKey(spec.name, spec.onnx_sha256.lower(), device.trt_version,
                     device.compute_capability, precision, dla_core), note


def read_sidecar(engines_dir: str | Path, key: EngineKey) -> dict[str, Any] | None:
    try:
        with open(key.sidecar_path(engines_dir), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def accepted_engine(engines_dir: str | Path, key: EngineKey,
                    check_hash: bool = True) -> dict[str, Any] | None:
    """The sidecar of an accepted engine for exactly this key, or None.

    Accepted: the sidecar names this key, records a passed validation, and the engine file's
    sha256 is the one recorded. (TensorRTBackend checks the hash again on the bytes it loads.)
    """
    sidecar = read_sidecar(engines_dir, key)
    if sidecar is None or sidecar.get("format") != SIDECAR_FORMAT:
        return None
    expected = {"model": key.model, "onnx_sha256": key.onnx_sha256,
                "tensorrt_version": key.trt_version,
                "compute_capability": key.compute_capability,
                "precision": key.precision, "dla_core": key.dla_core}
    if any(sidecar.get(field) != value for field, value in expected.items()):
        return None
    if not sidecar.get("validation", {}).get("passed"):
        return None
    path = key.engine_path(engines_dir)
    if not path.is_file():
        return None
    if check_hash and sha256_file(path) != sidecar.get("engine_sha256"):
        return None
    return sidecar


def engine_for(spec: ModelSpec, cfg: Config) -> tuple[Path, str] | None:
    """(engine file, its sha256 from the sidecar) of this model's accepted engine, or None.

    Looks for the key the builder would have chosen: the manifest's precision (FP32 where the
    GPU has no fast FP16) and the configured DLA core (the GPU where the device has no such
    core). The engine's hash is checked by the backend on the bytes it loads, so a tampered
    engine is refused loudly, not skipped.
    """
    try:
        trt, cuda = import_tensorrt()
        device = probe_device(trt, cuda)
    except TensorRTUnavailableError:
        return None
    engines_dir = cfg.models.engines_dir
    # The configured DLA core first; the GPU engine the builder makes where that core is
    # missing (or the model is FP32) next.
    for dla_core in dict.fromkeys((cfg.models.dla, None)):
        for fast_fp16 in (True, False):
            key, _note = plan_key(spec, device, dla_core, fast_fp16)
            sidecar = accepted_engine(engines_dir, key, check_hash=False)
            if sidecar is not None:
                return key.engine_path(engines_dir), str(sidecar["engine_sha256"])
    return None


def backend_kind(cfg: Config, model: str | None = None,
                 manifest: Manifest | None = None) -> str:
    """``"onnxruntime"`` or ``"tensorrt"``: what ``model`` runs on (with no model: what all of
    the booth's models run on; ``"onnxruntime"`` unless every one of them has an engine).

    ``auto`` means TensorRT only where an accepted engine for this device exists: TensorRT
    being importable is not enough (engines are built per device and TensorRT version).
    """
    configured = cfg.models.backend
    manifest = manifest or load_manifest()
    if model is not None and model in manifest.models and manifest.models[model].profiles:
        return "onnxruntime"  # dynamic shapes: the TensorRT backend binds fixed shapes
    if configured in ("onnxruntime", "tensorrt"):
        return configured
    names = [model] if model is not None else [n for n, e in manifest.models.items()
                                               if not e.profiles]
    found = all(name in manifest.models and engine_for(manifest.models[name], cfg) is not None
                for name in names)
    return "tensorrt" if found else "onnxruntime"
