"""The engine builder around FakeTensorRT (no GPU here): keys, rebuilds, cache, sidecar, gate.

FakeTensorRT "builds" by wrapping the ONNX bytes and "runs" them with ONNX Runtime (rounding
FP16 engines' outputs to float16), so these tests check everything around TensorRT, not
TensorRT itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from appliance.models.backend import ModelIntegrityError
from appliance.models.engines import EngineKey, accepted_engine, plan_key, timing_cache_path
from appliance.models.tensorrt_build import (
    EngineBuildError,
    EngineOutOfMemoryError,
    EngineValidationError,
    UnsupportedOperatorError,
    build_engines,
)
from appliance.models.tensorrt_support import DeviceInfo
from tests.fakes.fake_tensorrt import FakeTensorRT, install_fakes, parse_engine
from tests.model_graphs import conv_prelu_model


@dataclass(frozen=True)
class Spec:
    name: str
    onnx_sha256: str
    precision: str = "fp16"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    return install_fakes(monkeypatch)


def _install_model(engines_dir: Path, name: str = "test_conv", seed: int = 7,
                   precision: str = "fp16") -> Spec:
    data = conv_prelu_model(seed)
    (engines_dir / "onnx").mkdir(parents=True, exist_ok=True)
    (engines_dir / "onnx" / f"{name}.onnx").write_bytes(data)
    return Spec(name, hashlib.sha256(data).hexdigest(), precision)


def _build(engines_dir: Path, specs, **kwargs):
    lines: list[str] = []
    results = build_engines(specs, engines_dir, progress=lines.append, **kwargs)
    return results, lines


def _engines(engines_dir: Path) -> list[str]:
    return sorted(p.name for p in (engines_dir / "trt").glob("*.engine"))


def test_engine_key_names_every_part() -> None:
    sha = "ab" * 32
    key = EngineKey("face_landmark", sha, "10.3.0.30", "8.7", "fp16", 1)
    assert key.stem == f"face_landmark.{sha[:16]}.trt10.3.0.30.sm87.fp16.dla1"
    gpu = EngineKey("face_landmark", sha, "10.3.0.30", "8.7", "fp32")
    assert gpu.engine_path("/e") == Path(f"/e/trt/face_landmark.{sha[:16]}.trt10.3.0.30.sm87"
                                         ".fp32.engine")
    assert gpu.sidecar_path("/e").name == gpu.engine_path("/e").name[:-len("engine")] + "json"


def test_plan_key_respects_precision_and_dla_limits() -> None:
    device = DeviceInfo("10.3.0.30", "8.7", "Orin")
    key, note = plan_key(Spec("m", "cd" * 32, "fp32"), device, dla_core=0)
    assert key.precision == "fp32" and key.dla_core is None and "DLA" in note
    key, note = plan_key(Spec("m", "cd" * 32, "fp16"), device, dla_core=0)
    assert key.precision == "fp16" and key.dla_core == 0 and note == ""
    key, note = plan_key(Spec("m", "cd" * 32, "fp16"), device, fast_fp16=False)
    assert key.precision == "fp32" and "FP16" in note


def test_build_writes_engine_and_sidecar(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path)
    results, lines = _build(tmp_path, [spec])
    assert [r.status for r in results] == ["built"], lines
    key = results[0].key
    assert key is not None
    engine = key.engine_path(tmp_path)
    assert engine.name == f"test_conv.{spec.onnx_sha256[:16]}.trt10.3.0.30.sm87.fp16.engine"
    sidecar = json.loads(key.sidecar_path(tmp_path).read_text())
    assert sidecar["engine_sha256"] == hashlib.sha256(engine.read_bytes()).hexdigest()
    assert sidecar["onnx_sha256"] == spec.onnx_sha256
    assert (sidecar["tensorrt_version"], sidecar["compute_capability"]) == ("10.3.0.30", "8.7")
    assert (sidecar["precision"], sidecar["dla_core"]) == ("fp16", None)
    assert sidecar["validation"]["passed"] is True
    # FP16 rounding shows as a small, non-zero difference within the FP16 tolerance.
    assert 0 < sidecar["validation"]["max_abs_diff"] < 1e-2
    assert dt.datetime.fromisoformat(sidecar["built_at"]).tzinfo is not None
    assert accepted_engine(tmp_path, key) == sidecar
    assert not list((tmp_path / "trt").glob("*.partial"))
    assert any("building FP16 engine" in line for line in lines)
    assert any("[1/1] test_conv" in line for line in lines)


def test_builder_configuration(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path)
    _build(tmp_path, [spec], dla_core=1)
    config = fake.last_config
    assert config is not None
    assert fake.BuilderFlag.FP16 in config.flags
    assert fake.BuilderFlag.GPU_FALLBACK in config.flags
    assert config.default_device_type is fake.DeviceType.DLA and config.DLA_core == 1
    assert config.pools[fake.MemoryPoolType.WORKSPACE] == 512 << 20
    assert config.profiles[0].shapes == {
        "image": ((1, 3, 8, 8),) * 3, "gain": ((1, 4, 1, 1),) * 3}
    assert config.ignore_mismatch is False
    assert _engines(tmp_path)[0].endswith(".fp16.dla1.engine")
    header, _ = parse_engine(next((tmp_path / "trt").glob("*.engine")).read_bytes())
    assert header["device"] == "DLA" and header["gpu_fallback"]


def test_fp32_model_gets_strict_fp32(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path, precision="fp32")
    results, _ = _build(tmp_path, [spec])
    assert results[0].status == "built"
    config = fake.last_config
    assert config is not None
    assert fake.BuilderFlag.FP16 not in config.flags and fake.BuilderFlag.TF32 not in config.flags
    assert _engines(tmp_path)[0].endswith(".fp32.engine")


def test_rebuild_only_when_a_key_part_changes(tmp_path: Path, fake: FakeTensorRT,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _install_model(tmp_path)
    _build(tmp_path, [spec])
    assert fake.builds == 1
    results, _ = _build(tmp_path, [spec])
    assert results[0].status == "up to date" and fake.builds == 1
    results, _ = _build(tmp_path, [spec], force=True)
    assert results[0].status == "built" and fake.builds == 2

    results, _ = _build(tmp_path, [spec], dla_core=0)  # DLA core is part of the key
    assert results[0].status == "built" and _engines(tmp_path)[0].endswith(".dla0.engine")

    spec32 = Spec(spec.name, spec.onnx_sha256, "fp32")  # precision
    assert _build(tmp_path, [spec32])[0][0].status == "built"
    assert _engines(tmp_path) == [results[0].key.stem.replace("fp16.dla0", "fp32") + ".engine"]

    new_model = _install_model(tmp_path, seed=8)  # ONNX hash
    assert _build(tmp_path, [new_model])[0][0].status == "built"
    assert new_model.onnx_sha256[:16] in _engines(tmp_path)[0]

    # A JetPack upgrade: new TensorRT version, and another GPU: each rebuilds once.
    upgraded = install_fakes(monkeypatch, version="10.7.0.23")
    results, lines = _build(tmp_path, [new_model])
    assert results[0].status == "built" and upgraded.builds == 1
    assert ".trt10.7.0.23.sm87." in _engines(tmp_path)[0] and len(_engines(tmp_path)) == 1
    assert any("removed stale engine" in line for line in lines)
    other_gpu = install_fakes(monkeypatch, capability=(7, 2), version="10.7.0.23")
    assert _build(tmp_path, [new_model])[0][0].status == "built" and other_gpu.builds == 1
    assert ".sm72." in _engines(tmp_path)[0]
    assert _build(tmp_path, [new_model])[0][0].status == "up to date"


def test_timing_cache_is_persisted_and_reused(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path)
    _build(tmp_path, [spec])
    cache = timing_cache_path(tmp_path, DeviceInfo("10.3.0.30", "8.7", "x"))
    assert cache.name == "timing.trt10.3.0.30.sm87.cache" and cache.is_file()
    entries = json.loads(cache.read_text())["entries"]
    assert len(entries) == 5  # one per node of the graph
    assert fake.last_build == {"hits": 0, "new": 5}
    _build(tmp_path, [spec], force=True)
    assert fake.last_build == {"hits": 5, "new": 0}
    assert fake.last_config is not None and fake.last_config.timing_cache is not None
    assert fake.last_config.timing_cache.loaded == set(entries)


def test_engine_beyond_fp16_tolerance_is_rejected(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path)
    fake.output_error = 0.25
    results, lines = _build(tmp_path, [spec])
    assert results[0].status == "failed"
    assert isinstance(results[0].error, EngineValidationError)
    assert "differs from ONNX Runtime by up to 0.25" in results[0].detail
    assert "'features'" in results[0].detail
    assert not list((tmp_path / "trt").glob("*.engine*")) and not _sidecars(tmp_path)
    assert any("remedy:" in line for line in lines)
    fake.output_error = 0.004  # within the FP16 tolerance
    assert _build(tmp_path, [spec])[0][0].status == "built"


def _sidecars(engines_dir: Path) -> list[Path]:
    return list((engines_dir / "trt").glob("*.json"))


def test_fp32_tolerance_is_tight(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path, precision="fp32")
    fake.output_error = 0.004
    results, _ = _build(tmp_path, [spec])
    assert isinstance(results[0].error, EngineValidationError)


def test_clear_errors(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path)
    fake.build_failure = "oom"
    (result,), _ = _build(tmp_path, [spec])
    assert isinstance(result.error, EngineOutOfMemoryError)
    assert "ran out of memory" in result.detail and "systemctl stop" in result.error.remedy

    fake.build_failure = ""
    fake.unsupported_ops = {"PRelu"}
    (result,), _ = _build(tmp_path, [spec])
    assert isinstance(result.error, UnsupportedOperatorError)
    assert "cannot import operator PRelu" in result.detail

    fake.unsupported_ops = set()
    wrong = Spec(spec.name, "0" * 64)
    (result,), _ = _build(tmp_path, [wrong])
    assert isinstance(result.error, EngineBuildError) and "hash mismatch" in result.detail
    assert isinstance(result.error, ModelIntegrityError)
    assert not _engines(tmp_path)


def test_one_failure_does_not_stop_the_others(tmp_path: Path, fake: FakeTensorRT) -> None:
    good = _install_model(tmp_path, "good")
    missing = Spec("missing", "1" * 64)
    results, _ = _build(tmp_path, [missing, good])
    assert [r.status for r in results] == ["failed", "built"]
    assert "does not exist" in results[0].detail


def test_interrupted_build_resumes(tmp_path: Path, fake: FakeTensorRT) -> None:
    spec = _install_model(tmp_path)
    (result,), _ = _build(tmp_path, [spec])
    assert result.key is not None
    # Simulate a crash between writing the engine and its sidecar, plus a half-written file.
    result.key.sidecar_path(tmp_path).unlink()
    (tmp_path / "trt" / ".other.engine.partial").write_bytes(b"half")
    results, lines = _build(tmp_path, [spec])
    assert results[0].status == "built"
    assert any("interrupted build" in line for line in lines)
    assert not list((tmp_path / "trt").glob("*.partial"))


def test_tampered_engine_is_not_accepted_and_refused_at_load(
        tmp_path: Path, fake: FakeTensorRT) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend

    spec = _install_model(tmp_path)
    (result,), _ = _build(tmp_path, [spec])
    assert result.key is not None
    sidecar = accepted_engine(tmp_path, result.key)
    assert sidecar is not None
    engine = result.key.engine_path(tmp_path)
    backend = TensorRTBackend(engine, sidecar["engine_sha256"], spec.name)
    backend.close()
    engine.write_bytes(engine.read_bytes() + b"\0")
    assert accepted_engine(tmp_path, result.key) is None
    with pytest.raises(ModelIntegrityError):
        TensorRTBackend(engine, sidecar["engine_sha256"], spec.name)
    assert _build(tmp_path, [spec])[0][0].status == "built"


def test_without_tensorrt_the_onnxruntime_path_is_prepared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    spec = _install_model(tmp_path)
    broken = Spec("broken", "2" * 64)
    (tmp_path / "onnx" / "broken.onnx").write_bytes(b"not this")
    results, lines = _build(tmp_path, [spec, broken])
    assert [r.status for r in results] == ["onnxruntime", "failed"]
    assert any("TensorRT is not importable" in line for line in lines)
    assert any("preparing the ONNX Runtime path" in line for line in lines)
    assert isinstance(results[1].error, ModelIntegrityError)
    assert not (tmp_path / "trt").exists()


def test_validation_inputs_are_fixed_and_in_range(tmp_path: Path) -> None:
    from appliance.models.onnxruntime_backend import OnnxRuntimeBackend
    from appliance.models.tensorrt_build import validation_feeds

    data = conv_prelu_model(size=32)  # large enough for the mosaic
    (tmp_path / "big.onnx").write_bytes(data)
    backend = OnnxRuntimeBackend(tmp_path / "big.onnx", hashlib.sha256(data).hexdigest(), "big",
                                 threads=1)
    try:
        first, again = validation_feeds(backend, 0.0, 1.0), validation_feeds(backend, 0.0, 1.0)
    finally:
        backend.close()
    assert len(first) == 2
    for one, other in zip(first, again, strict=True):
        for name, value in one.items():
            np.testing.assert_array_equal(value, other[name])
            assert value.min() >= 0.0 and value.max() <= 1.0
    # The mosaic is smooth: neighbouring pixels differ far less than in the noise.
    noise, mosaic = first[0]["image"], first[1]["image"]
    assert np.abs(np.diff(mosaic, axis=-1)).mean() < 0.5 * np.abs(np.diff(noise, axis=-1)).mean()


def test_tolerance_allows_few_edge_values_but_not_many_or_wild_ones() -> None:
    from appliance.models.tensorrt_build import compare_outputs

    reference = {"mask": np.linspace(0, 1, 10_000, dtype=np.float32)}  # bound 0.02, cap 0.2
    edge = reference["mask"].copy()
    edge[:50] += 0.05  # 0.5 % of pixels on a sigmoid edge
    result = compare_outputs("m", "fp16", reference, {"mask": edge})
    assert result["passed"] and result["max_abs_diff"] == pytest.approx(0.05, abs=1e-6)
    assert result["p99_abs_diff"] < 1e-6
    many = reference["mask"].copy()
    many[:300] += 0.05  # 3 %: the bulk disagrees
    with pytest.raises(EngineValidationError, match="99th percentile"):
        compare_outputs("m", "fp16", reference, {"mask": many})
    wild = reference["mask"].copy()
    wild[7] = 0.9  # one value far off
    with pytest.raises(EngineValidationError):
        compare_outputs("m", "fp16", reference, {"mask": wild})
    broken = reference["mask"].copy()
    broken[3] = np.nan
    with pytest.raises(EngineValidationError):
        compare_outputs("m", "fp16", reference, {"mask": broken})
