"""Build, validate and cache one TensorRT engine per model (the engine step of `ephemera build`).

Engine names, sidecars and what counts as accepted live in ``appliance.models.engines`` (the
loader reads them too); this module builds, validates and writes.

A build is skipped when an accepted engine for the current key exists, and happens when any
part of the key changes (a JetPack upgrade changes the TensorRT version: every engine is
rebuilt on the next `ephemera build`). An engine is accepted only after it ran on fixed seeded
inputs and agreed with ONNX Runtime within the tolerance of its precision; the sidecar is
written last, so an interrupted build leaves no accepted engine behind and simply runs again
(resumable per model). Failures are ``EngineBuildError`` subclasses whose message says what
happened and whose ``remedy`` says what to do; the model then runs on ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.models.atomic import commit_partial, leftover_partials, write_atomic, write_partial
from appliance.models.backend import Backend, BackendError, ModelIntegrityError
from appliance.models.engines import (
    SIDECAR_FORMAT,
    EngineKey,
    ModelSpec,
    accepted_engine,
    engine_dir,
    plan_key,
    timing_cache_path,
)
from appliance.models.integrity import read_verified, sha256_file
from appliance.models.manifest import onnx_path
from appliance.models.tensorrt_support import (
    DeviceInfo,
    TensorRTUnavailableError,
    import_tensorrt,
    make_logger,
    probe_device,
)

Progress = Callable[[str], None]
WORKSPACE_BYTES = 512 << 20  # plenty for these models; small enough for an 8 GB Orin Nano
VALIDATION_SEED = 20240607
# Per output, with bound = atol + rtol * max|onnxruntime|: the 99th percentile of
# |engine - onnxruntime| must be within the bound, and every element within OUTLIER_FACTOR times
# it. A percentile, because a probability map (the selfie segmenter) has a few pixels on its
# sigmoid's steep edge where FP16 moves the value by several hundredths while the bulk agrees
# to a thousandth (bench/fp16_margin.py); the outlier cap still rejects garbage.
TOLERANCES = {"fp16": (1e-2, 1e-2), "fp32": (1e-4, 1e-4)}
OUTLIER_FACTOR = 10.0


class EngineBuildError(BackendError):
    """An engine could not be built or was not accepted; ``remedy`` says what to do."""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


class EngineOutOfMemoryError(EngineBuildError):
    """The GPU ran out of memory while building or validating."""


class UnsupportedOperatorError(EngineBuildError):
    """TensorRT's ONNX parser cannot import an operator of the model."""


class EngineValidationError(EngineBuildError):
    """The engine's outputs differ from ONNX Runtime's beyond the precision's tolerance."""


class OnnxHashMismatchError(EngineBuildError, ModelIntegrityError):
    """The ONNX file to build from is not the one the manifest pins: nothing may use it."""


@dataclass(frozen=True)
class BuildResult:
    model: str
    status: str  # "built", "up to date", "failed", "onnxruntime"
    detail: str
    key: EngineKey | None = None
    error: BackendError | None = None


# -- validation ---------------------------------------------------------------------------------


def validation_feeds(backend: Backend, low: float = -1.0, high: float = 1.0,
                     seed: int = VALIDATION_SEED) -> list[dict[str, Any]]:
    """Fixed seeded input sets within the model's input range ``[low, high]``.

    Two sets: uniform noise, and a 16 x 16 random mosaic upsampled bilinearly to the input size.
    Noise alone leaves some models idle (the selfie segmenter answers "no person" everywhere,
    so an engine that broke it would still agree); the mosaic drives every model's outputs
    over their range.
    """
    import cv2

    rng = np.random.default_rng(seed)
    noise: dict[str, Any] = {}
    mosaic: dict[str, Any] = {}
    for spec in backend.inputs:
        if not np.issubdtype(spec.dtype, np.floating):
            noise[spec.name] = np.zeros(spec.shape, spec.dtype)
            mosaic[spec.name] = noise[spec.name]
            continue
        noise[spec.name] = rng.uniform(low, high, spec.shape).astype(spec.dtype)
        if len(spec.shape) == 4 and min(spec.shape[2:]) >= 16:
            n, c, h, w = spec.shape
            tiles = rng.uniform(low, high, (n * c, 16, 16)).astype(np.float32)
            planes = [cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR) for t in tiles]
            mosaic[spec.name] = np.stack(planes).reshape(spec.shape).astype(spec.dtype)
        else:
            mosaic[spec.name] = rng.uniform(low, high, spec.shape).astype(spec.dtype)
    return [noise, mosaic]


def compare_outputs(model: str, precision: str, reference: dict[str, npt.NDArray[Any]],
                    candidate: dict[str, npt.NDArray[Any]]) -> dict[str, Any]:
    """Per-output differences; raises EngineValidationError beyond the tolerance."""
    atol, rtol = TOLERANCES[precision]
    maxima: dict[str, float] = {}
    p99s: dict[str, float] = {}
    for name, ref in reference.items():
        if name not in candidate:
            raise EngineValidationError(
                f"{model}: the engine has no output {name!r}, which ONNX Runtime produces",
                "rebuild with `ephemera build --force`; if it persists, report it")
        got = np.asarray(candidate[name], dtype=np.float64)
        want = np.asarray(ref, dtype=np.float64)
        if got.shape != want.shape:
            raise EngineValidationError(
                f"{model}: engine output {name!r} has shape {got.shape}, ONNX Runtime's has "
                f"{want.shape}", "rebuild with `ephemera build --force`")
        diff = np.abs(got - want)
        diff[~np.isfinite(diff)] = np.inf
        worst = float(diff.max()) if diff.size else 0.0
        p99 = float(np.percentile(diff, 99)) if diff.size else 0.0
        maxima[name], p99s[name] = worst, p99
        bound = atol + rtol * (float(np.max(np.abs(want))) if want.size else 0.0)
        if p99 > bound or worst > OUTLIER_FACTOR * bound:
            raise EngineValidationError(
                f"{model}: the {precision.upper()} engine's output {name!r} differs from ONNX "
                f"Runtime by up to {worst:.3g} (99th percentile {p99:.3g}) on the validation "
                f"inputs; allowed {bound:.3g} at the 99th percentile and "
                f"{OUTLIER_FACTOR * bound:.3g} for any value. The engine was not accepted and "
                "the model will run on ONNX Runtime",
                "set the model's precision to fp32 in engines/models.toml and rebuild, or "
                "report the model")
    return {"passed": True, "max_abs_diff": max(maxima.values(), default=0.0),
            "p99_abs_diff": max(p99s.values(), default=0.0), "per_output_max": maxima,
            "atol": atol, "rtol": rtol, "outlier_factor": OUTLIER_FACTOR,
            "seed": VALIDATION_SEED}


def validate_engine(key: EngineKey, engine_file: Path, engine_sha256: str,
                    onnx_file: Path, onnx_sha256: str,
                    input_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, Any]:
    """Run the engine and ONNX Runtime on the same fixed inputs and compare."""
    from appliance.models.onnxruntime_backend import OnnxRuntimeBackend
    from appliance.models.tensorrt_backend import TensorRTBackend

    engine = TensorRTBackend(engine_file, engine_sha256, key.model)
    result: dict[str, Any] = {}
    try:
        reference_backend = OnnxRuntimeBackend(onnx_file, onnx_sha256, key.model)
        try:
            for feeds in validation_feeds(reference_backend, *input_range):
                reference = {k: v.copy() for k, v in reference_backend.run(feeds).items()}
                candidate = {k: v.copy() for k, v in engine.run(feeds).items()}
                checked = compare_outputs(key.model, key.precision, reference, candidate)
                if not result or checked["max_abs_diff"] > result["max_abs_diff"]:
                    result = checked
        finally:
            reference_backend.close()
    finally:
        engine.close()
    result["inputs"] = (f"uniform noise and a 16x16 mosaic in [{input_range[0]:g}, "
                        f"{input_range[1]:g}], seed {VALIDATION_SEED}")
    return result


# -- building -----------------------------------------------------------------------------------


def _is_out_of_memory(messages: Iterable[str]) -> bool:
    needles = ("out of memory", "outofmemory", "cudaerrormemoryallocation",
               "could not allocate", "insufficient memory")
    return any(n in m.lower() for m in messages for n in needles)


def _parse_failure(trt: Any, key: EngineKey, parser: Any) -> EngineBuildError:
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    for error in errors:
        if error.code() == trt.ErrorCode.UNSUPPORTED_NODE:
            return UnsupportedOperatorError(
                f"{key.model}: TensorRT {key.trt_version} cannot import operator "
                f"{error.node_operator()} (node {error.node_name()!r}): {error.desc()}; the model "
                "will run on ONNX Runtime",
                "upgrade JetPack/TensorRT or re-convert the model with `ephemera build --force`")
    detail = "; ".join(str(e.desc()) for e in errors[:3]) or "no detail from the parser"
    return EngineBuildError(f"{key.model}: TensorRT's ONNX parser rejected the model: {detail}",
                            "re-convert the model with `ephemera build --force`")


def profile_shapes(spec: ModelSpec) -> list[dict[str, tuple[tuple[int, ...], ...]]]:
    """The manifest's ``profiles`` as TensorRT wants them: per profile, per input with named
    dimensions, its (min, opt, max) shapes. Empty for a model with static shapes."""
    profiles = getattr(spec, "profiles", ())
    out = []
    for profile in profiles:
        shapes: dict[str, tuple[tuple[int, ...], ...]] = {}
        for tensor in getattr(spec, "inputs", ()):
            if all(isinstance(d, int) for d in tensor.shape):
                continue
            shapes[tensor.name] = tuple(
                tuple(d if isinstance(d, int) else int(profile[d][i]) for d in tensor.shape)
                for i in range(3))
        out.append(shapes)
    return out


def serialize_engine(trt: Any, key: EngineKey, onnx_bytes: bytes,
                     input_shapes: dict[str, tuple[int, ...]], cache_file: Path,
                     workspace: int = WORKSPACE_BYTES,
                     profiles: Sequence[dict[str, tuple[tuple[int, ...], ...]]] = ()) -> bytes:
    """Parse the ONNX, configure the builder, build; the timing cache is loaded and saved."""
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        raise _parse_failure(trt, key, parser)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if key.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)  # FP32 means FP32, not TF32's 10-bit mantissa
    if key.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = key.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    for wanted in profiles or [{}]:
        # One optimisation profile per manifest profile (dynamic shapes: min, opt, max from
        # the manifest); static inputs get their one shape.
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor = network.get_input(index)
            if tensor.name in wanted:
                low, opt, high = wanted[tensor.name]
                profile.set_shape(tensor.name, low, opt, high)
                continue
            shape = tuple(tensor.shape)
            fixed = tuple(d if d > 0 else input_shapes.get(tensor.name, shape)[i]
                          for i, d in enumerate(shape))
            fixed = tuple(1 if d <= 0 else d for d in fixed)
            profile.set_shape(tensor.name, fixed, fixed, fixed)
        config.add_optimization_profile(profile)
    cache_bytes = b""
    with contextlib.suppress(OSError):
        cache_bytes = cache_file.read_bytes()
    try:
        cache = config.create_timing_cache(cache_bytes)
    except Exception:  # an unreadable cache only costs time: start a new one
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        if _is_out_of_memory(logger.errors):
            raise EngineOutOfMemoryError(
                f"{key.model}: the GPU ran out of memory while building the engine "
                f"(workspace {workspace >> 20} MiB)",
                "stop the booth service (systemctl stop ephemera) and other GPU programs, "
                "then run `ephemera build` again")
        detail = "; ".join(logger.errors[-3:]) or "no detail from TensorRT"
        raise EngineBuildError(f"{key.model}: TensorRT could not build the engine: {detail}",
                               "run `ephemera build --force`; if it fails again, report it")
    write_atomic(cache_file, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def _remove_stale(engines_dir: str | Path, key: EngineKey, progress: Progress) -> None:
    """Engines of this model for another key can never be used here again."""
    for path in sorted(engine_dir(engines_dir).glob(f"{key.model}.*")):
        stem = path.name.rsplit(".", 1)[0]
        if stem != key.stem and path.suffix in (".engine", ".json"):
            path.unlink(missing_ok=True)
            if path.suffix == ".engine":
                progress(f"  {key.model}: removed stale engine {path.name}")


def build_engine(spec: ModelSpec, engines_dir: str | Path, trt: Any, device: DeviceInfo, *,
                 dla_core: int | None = None, force: bool = False,
                 progress: Progress = print, workspace: int = WORKSPACE_BYTES) -> BuildResult:
    """Build (or keep) the engine of one model; raises EngineBuildError subclasses."""
    probe = trt.Builder(make_logger(trt))
    fast_fp16 = bool(probe.platform_has_fast_fp16)
    if dla_core is not None and dla_core >= int(probe.num_DLA_cores):
        progress(f"  {spec.name}: DLA core {dla_core} asked for, but this device has "
                 f"{int(probe.num_DLA_cores)} DLA core(s): building for the GPU")
        dla_core = None
    del probe
    key, note = plan_key(spec, device, dla_core, fast_fp16)
    if note:
        progress(f"  {spec.name}: {note}")
    if not force:
        sidecar = accepted_engine(engines_dir, key)
        if sidecar is not None:
            return BuildResult(spec.name, "up to date",
                               f"{key.engine_path(engines_dir).name} (validated, max |diff| "
                               f"{sidecar['validation']['max_abs_diff']:.3g})", key)
    source = onnx_path(engines_dir, spec.name)
    try:
        onnx_bytes = read_verified(source, key.onnx_sha256, what=f"ONNX model {spec.name}")
    except ModelIntegrityError as exc:
        raise OnnxHashMismatchError(f"{spec.name}: hash mismatch: {exc}",
                                    "re-convert the models with `ephemera build --force`") \
            from None
    target = key.engine_path(engines_dir)
    where = f"DLA core {key.dla_core} with GPU fallback" if key.dla_core is not None else "GPU"
    progress(f"  {spec.name}: building {key.precision.upper()} engine on the {where} "
             f"({device.gpu_name}, {device.sm}, TensorRT {device.trt_version})")
    started = time.monotonic()
    from appliance.models.onnxruntime_backend import OnnxRuntimeBackend

    reference = OnnxRuntimeBackend(source, key.onnx_sha256, spec.name, threads=1)
    shapes = {s.name: s.shape for s in reference.inputs}
    reference.close()
    cache_file = timing_cache_path(engines_dir, device)
    engine_bytes = serialize_engine(trt, key, onnx_bytes, shapes, cache_file, workspace,
                                    profile_shapes(spec))
    del onnx_bytes
    build_seconds = time.monotonic() - started
    partial = write_partial(target, engine_bytes)  # validated before it takes the name
    engine_sha = sha256_file(partial)
    progress(f"  {spec.name}: built in {build_seconds:.1f} s; checking it against ONNX Runtime")
    try:
        low, high = getattr(spec, "normalisation", (-1.0, 1.0))
        validation = validate_engine(key, partial, engine_sha, source, key.onnx_sha256,
                                     (float(low), float(high)))
    except BackendError as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, EngineBuildError):
            raise
        if "out of GPU memory" in str(exc):
            raise EngineOutOfMemoryError(f"{spec.name}: {exc}",
                                    "stop other GPU programs and run `ephemera build` again") \
                from None
        raise EngineValidationError(f"{spec.name}: the new engine could not be run: {exc}",
                                    "run `ephemera build --force`") from None
    commit_partial(partial, target)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "model": key.model,
        "onnx_sha256": key.onnx_sha256,
        "engine_sha256": engine_sha,
        "engine_file": target.name,
        "tensorrt_version": key.trt_version,
        "compute_capability": key.compute_capability,
        "gpu": device.gpu_name,
        "precision": key.precision,
        "dla_core": key.dla_core,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(build_seconds, 2),
        "validation": validation,
    }
    write_atomic(key.sidecar_path(engines_dir),
                  (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    _remove_stale(engines_dir, key, progress)
    return BuildResult(spec.name, "built",
                       f"{target.name} (max |diff| vs ONNX Runtime "
                       f"{validation['max_abs_diff']:.3g})", key)


@contextlib.contextmanager
def _build_lock(engines_dir: str | Path) -> Iterator[None]:
    directory = engine_dir(engines_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EngineBuildError("another engine build is running on this machine",
                                   "wait for it to finish, then run `ephemera build` again") \
                from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_interrupted(engines_dir: str | Path, progress: Progress) -> None:
    for leftover in leftover_partials(engine_dir(engines_dir)):
        leftover.unlink(missing_ok=True)
        progress(f"  removed {leftover.name}, left by an interrupted build")


def prepare_onnxruntime(specs: Sequence[ModelSpec], engines_dir: str | Path,
                        progress: Progress = print) -> list[BuildResult]:
    """Without TensorRT: check every ONNX model loads in ONNX Runtime with its pinned hash."""
    from appliance.models.onnxruntime_backend import OnnxRuntimeBackend

    results = []
    for spec in specs:
        try:
            backend = OnnxRuntimeBackend(onnx_path(engines_dir, spec.name), spec.onnx_sha256,
                                         spec.name, threads=1)
        except BackendError as exc:
            progress(f"  {spec.name}: FAILED: {exc}")
            results.append(BuildResult(spec.name, "failed", str(exc), error=exc))
            continue
        backend.close()
        progress(f"  {spec.name}: ready for ONNX Runtime (sha256 verified)")
        results.append(BuildResult(spec.name, "onnxruntime", "ONNX Runtime on the CPU"))
    return results


def build_engines(specs: Sequence[ModelSpec], engines_dir: str | Path, *,
                  dla_core: int | None = None, force: bool = False,
                  progress: Progress = print) -> list[BuildResult]:
    """The engine step: one engine per model where TensorRT is here, else the ONNX Runtime path.

    Never raises for one model's failure: each result says what happened, and a model without
    an accepted engine runs on ONNX Runtime. Raises only when the step cannot start (another
    build holds the lock).
    """
    try:
        trt, cuda = import_tensorrt()
        device = probe_device(trt, cuda)
    except TensorRTUnavailableError as exc:
        progress(f"engines: {exc}")
        progress("engines: no TensorRT engines to build; preparing the ONNX Runtime path")
        return prepare_onnxruntime(specs, engines_dir, progress)
    progress(f"engines: TensorRT {device.trt_version} on {device.gpu_name} ({device.sm}); "
             f"{len(specs)} model(s); cache {engine_dir(engines_dir)}")
    results = []
    with _build_lock(engines_dir):
        _clean_interrupted(engines_dir, progress)
        for number, spec in enumerate(specs, 1):
            progress(f"[{number}/{len(specs)}] {spec.name}")
            if getattr(spec, "profiles", ()):
                # The TensorRT backend binds one fixed shape per tensor; a graph with dynamic
                # shapes stays on ONNX Runtime until it binds per run (profile_shapes is ready).
                detail = "dynamic shapes: runs on ONNX Runtime"
                progress(f"  {spec.name}: {detail}")
                results.append(BuildResult(spec.name, "onnxruntime", detail))
                continue
            try:
                result = build_engine(spec, engines_dir, trt, device, dla_core=dla_core,
                                      force=force, progress=progress)
            except EngineBuildError as exc:
                progress(f"  {spec.name}: FAILED: {exc.message}")
                if exc.remedy:
                    progress(f"  {spec.name}: remedy: {exc.remedy}")
                results.append(BuildResult(spec.name, "failed", exc.message, error=exc))
                continue
            except BackendError as exc:
                progress(f"  {spec.name}: FAILED: {exc}")
                results.append(BuildResult(spec.name, "failed", str(exc), error=exc))
                continue
            progress(f"  {spec.name}: {result.status}: {result.detail}")
            results.append(result)
    return results
