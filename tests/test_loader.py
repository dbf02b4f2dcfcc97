"""The loader: what `auto` picks, lazy cached opening, zeroise_all, and refusals.

TensorRT is absent here: the TensorRT cases use FakeTensorRT (tests/fakes/), which stands in
for TensorRT and pycuda and proves only the decisions made around them.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.config import Config, load_config
from appliance.models.backend import BackendError, ModelIntegrityError
from appliance.models.errors import ManifestError
from appliance.models.loader import ModelSet, backend_kind, open_backend
from appliance.models.manifest import DEFAULT_MANIFEST, Manifest, load_manifest
from appliance.models.onnxruntime_backend import OnnxRuntimeBackend, default_threads
from appliance.models.tensorrt_build import build_engines
from appliance.models.tensorrt_support import TensorRTUnavailableError
from appliance.secure.buffers import REGISTRY
from tests.fakes.fake_tensorrt import FakeTensorRT, install_fakes
from tests.model_graphs import conv_prelu_model, conv_prelu_reference, random_inputs

MODEL = "test_conv"

_MANIFEST = """\
schema = 1

[sources.local]
kind = "pypi-wheel"
requirement = "nothing==1.0"
wheel = "nothing-1.0-py3-none-any.whl"
sha256 = "{zero}"
platform = "any"
python_version = "3.11"
implementation = "py"
licence = "Apache-2.0"

[models.test_conv]
role = "test"
source = "local"
member = "m.tflite"
member_sha256 = "{zero}"
converter = "none"
onnx_sha256 = "{sha}"
layout = "NCHW"
normalisation = [-1.0, 1.0]
precision = "fp16"
licence = "Apache-2.0"
inputs = [{{ name = "image", shape = [1, 3, 8, {width}], dtype = "float32", layout = "NCHW" }},
          {{ name = "gain", shape = [1, 4, 1, 1], dtype = "float32", layout = "NCHW" }}]
outputs = [{{ name = "features", shape = [1, 4, 8, 8], dtype = "float32", layout = "NCHW" }},
           {{ name = "scores", shape = [1, 4, 8, 8], dtype = "float32", layout = "NCHW" }}]
"""


def _setup(tmp_path: Path, width: int = 8, extra: str = "") -> Manifest:
    data = conv_prelu_model()
    (tmp_path / "onnx").mkdir(exist_ok=True)
    (tmp_path / "onnx" / f"{MODEL}.onnx").write_bytes(data)
    text = _MANIFEST.format(zero="0" * 64, sha=hashlib.sha256(data).hexdigest(), width=width)
    text += extra
    (tmp_path / "models.toml").write_text(text)
    return load_manifest(tmp_path / "models.toml")


def _cfg(tmp_path: Path, backend: str = "auto", dla_core: int = -1) -> Config:
    return load_config(env={"EPHEMERA_MODELS_ENGINES_DIR": str(tmp_path),
                            "EPHEMERA_MODELS_BACKEND": backend,
                            "EPHEMERA_MODELS_DLA_CORE": str(dla_core)})


@pytest.fixture()
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def _check_runs(backend) -> None:
    feeds = random_inputs(11)
    out = backend.run(feeds)
    np.testing.assert_allclose(out["scores"], conv_prelu_reference(**feeds)["scores"],
                               rtol=1e-2, atol=1e-3)


def test_auto_without_tensorrt_is_onnxruntime(tmp_path: Path, no_tensorrt: None) -> None:
    manifest = _setup(tmp_path)
    cfg = _cfg(tmp_path)
    assert backend_kind(cfg, MODEL, manifest) == "onnxruntime"
    assert backend_kind(cfg, manifest=manifest) == "onnxruntime"
    backend = open_backend(MODEL, cfg, manifest)
    try:
        assert backend.name == "onnxruntime"
        _check_runs(backend)
    finally:
        backend.close()


def test_manifest_cpu_threads_caps_onnxruntime_threads(tmp_path: Path,
                                                         no_tensorrt: None) -> None:
    cfg = _cfg(tmp_path)
    backend = open_backend(MODEL, cfg, _setup(tmp_path))
    try:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert backend.options.intra_op_num_threads == default_threads()
    finally:
        backend.close()
    backend = open_backend(MODEL, cfg, _setup(tmp_path, extra="cpu_threads = 1\n"))
    try:
        assert isinstance(backend, OnnxRuntimeBackend)
        assert backend.options.intra_op_num_threads == 1
        _check_runs(backend)
    finally:
        backend.close()


@pytest.mark.parametrize("value", ["-1", "true", "\"2\"", "1.5"])
def test_manifest_refuses_a_bad_cpu_threads(tmp_path: Path, value: str) -> None:
    with pytest.raises(ManifestError, match="cpu_threads"):
        _setup(tmp_path, extra=f"cpu_threads = {value}\n")


def test_model_set_opens_lazily_caches_zeroises_and_closes(tmp_path: Path,
                                                            no_tensorrt: None) -> None:
    manifest = _setup(tmp_path)
    models = ModelSet(_cfg(tmp_path), manifest)
    owner = f"backend:{MODEL}"
    assert not REGISTRY.live(owner)  # nothing opened before first use
    backend = models.get(MODEL)
    assert models.get(MODEL) is backend and models.kinds() == {MODEL: "onnxruntime"}
    out = backend.run(random_inputs())
    assert np.any(out["features"])
    models.zeroise_all()
    assert not np.any(out["features"]) and not np.any(out["scores"])
    _check_runs(models.get(MODEL))
    models.close()
    assert not REGISTRY.live(owner) and models.kinds() == {}
    with models:
        _check_runs(models.get(MODEL))
    assert not REGISTRY.live(owner)


def test_unknown_model_names_the_known_ones(tmp_path: Path, no_tensorrt: None) -> None:
    manifest = _setup(tmp_path)
    with pytest.raises(BackendError, match=r"unknown model 'nope'.*test_conv"):
        open_backend("nope", _cfg(tmp_path), manifest)


def test_model_disagreeing_with_the_manifest_is_refused(tmp_path: Path,
                                                        no_tensorrt: None) -> None:
    manifest = _setup(tmp_path, width=9)
    with pytest.raises(BackendError, match="differ from the manifest"):
        open_backend(MODEL, _cfg(tmp_path), manifest)
    assert not REGISTRY.live(f"backend:{MODEL}")


def test_tensorrt_configured_without_tensorrt_says_so(tmp_path: Path, no_tensorrt: None) -> None:
    manifest = _setup(tmp_path)
    with pytest.raises(TensorRTUnavailableError, match="ONNX Runtime"):
        open_backend(MODEL, _cfg(tmp_path, "tensorrt"), manifest)


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    return install_fakes(monkeypatch)


def _build(tmp_path: Path, manifest: Manifest, dla_core: int | None = None) -> None:
    results = build_engines(list(manifest.models.values()), tmp_path, dla_core=dla_core,
                            progress=lambda line: None)
    assert [r.status for r in results] == ["built"]


def test_auto_picks_tensorrt_only_with_an_accepted_engine(tmp_path: Path,
                                                          fake: FakeTensorRT) -> None:
    manifest = _setup(tmp_path)
    cfg = _cfg(tmp_path)
    assert backend_kind(cfg, MODEL, manifest) == "onnxruntime"  # importable, but no engine
    with pytest.raises(BackendError, match=r"no accepted TensorRT engine.*ephemera build"):
        open_backend(MODEL, _cfg(tmp_path, "tensorrt"), manifest)
    _build(tmp_path, manifest)
    assert backend_kind(cfg, MODEL, manifest) == "tensorrt"
    assert backend_kind(cfg, manifest=manifest) == "tensorrt"
    assert backend_kind(_cfg(tmp_path, "onnxruntime"), MODEL, manifest) == "onnxruntime"
    with ModelSet(cfg, manifest) as models:
        backend = models.get(MODEL)
        assert backend.name == "tensorrt"
        _check_runs(backend)


def test_engine_for_another_tensorrt_or_dla_core_is_not_picked(
        tmp_path: Path, fake: FakeTensorRT, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _setup(tmp_path)
    _build(tmp_path, manifest, dla_core=0)
    assert backend_kind(_cfg(tmp_path, dla_core=0), MODEL, manifest) == "tensorrt"
    assert backend_kind(_cfg(tmp_path), MODEL, manifest) == "onnxruntime"  # GPU-only wanted
    install_fakes(monkeypatch, version="10.7.0.23")  # after a JetPack upgrade
    assert backend_kind(_cfg(tmp_path, dla_core=0), MODEL, manifest) == "onnxruntime"


def test_tampered_engine_is_refused_not_skipped(tmp_path: Path, fake: FakeTensorRT) -> None:
    manifest = _setup(tmp_path)
    _build(tmp_path, manifest)
    engine = next((tmp_path / "trt").glob("*.engine"))
    engine.write_bytes(engine.read_bytes() + b"x")
    with pytest.raises(ModelIntegrityError):
        open_backend(MODEL, _cfg(tmp_path), manifest)


@pytest.mark.needs_models
def test_the_booth_models_open_and_run_on_onnxruntime(no_tensorrt: None) -> None:
    manifest = load_manifest(DEFAULT_MANIFEST)
    cfg = load_config(env={})
    missing = [n for n, e in manifest.models.items()
               if not e.onnx_path(cfg.models.engines_dir).is_file()]
    if missing:
        pytest.skip(f"models not built (run `ephemera build`): {', '.join(missing)}")
    views = []
    with ModelSet(cfg, manifest) as models:
        for name, entry in manifest.models.items():
            backend = models.get(name)
            rng = np.random.default_rng(0)
            # A named (dynamic) dimension takes its first profile's "opt" size.
            shapes = {t.name: tuple(d if isinstance(d, int) else entry.profiles[0][d][1]
                                    for d in t.shape) for t in [*entry.inputs, *entry.outputs]}
            feeds = {t.name: rng.uniform(-1, 1, shapes[t.name]).astype(t.dtype)
                     for t in entry.inputs}
            out = backend.run(feeds)
            for tensor in entry.outputs:
                assert out[tensor.name].shape == shapes[tensor.name]
                assert np.all(np.isfinite(out[tensor.name]))
            views += list(out.values())
            views += [backend.input_buffer(t.name) for t in entry.inputs]
        assert any(np.any(v) for v in views)
        models.zeroise_all()
        assert not any(np.any(v) for v in views)


def test_doctor_says_which_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.models.backend_checks import inference_backend

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    result = inference_backend(_cfg(tmp_path))
    assert result.ok and "ONNX Runtime on the CPU for all" in result.detail
    refused = inference_backend(_cfg(tmp_path, "tensorrt"))
    assert not refused.ok and not refused.warning and "not importable" in refused.detail
    install_fakes(monkeypatch)  # TensorRT importable, but no engines in this directory
    fallback = inference_backend(_cfg(tmp_path))
    assert not fallback.ok and fallback.warning and "ephemera build" in fallback.remedy
    assert "face_landmark" in fallback.detail


@pytest.mark.needs_models
def test_build_hook_makes_engines_for_the_booth_models(
        tmp_path: Path, fake: FakeTensorRT, capsys: pytest.CaptureFixture[str]) -> None:
    """`ephemera build`'s engine step on the real manifest, TensorRT played by the fake."""
    import shutil

    from appliance.models.backend_checks import inference_backend
    from appliance.models.build import build_tensorrt_engines

    manifest = load_manifest(DEFAULT_MANIFEST)
    source = Path(load_config(env={}).models.engines_dir) / "onnx"
    if not all((source / f"{name}.onnx").is_file() for name in manifest.models):
        pytest.skip("models not built (run `ephemera build`)")
    shutil.copytree(source, tmp_path / "onnx")
    build_tensorrt_engines(manifest, tmp_path, force=False)
    out = capsys.readouterr().out
    static = [name for name, entry in manifest.models.items() if not entry.profiles]
    dynamic = [name for name in manifest.models if name not in static]
    assert out.count(": built: ") == len(static), out
    for name in dynamic:  # graphs with dynamic shapes stay on ONNX Runtime, and say so
        assert f"{name}: dynamic shapes: runs on ONNX Runtime" in out
    cfg = _cfg(tmp_path)
    for name in static:
        assert backend_kind(cfg, name, manifest) == "tensorrt"
    for name in dynamic:
        assert backend_kind(cfg, name, manifest) == "onnxruntime"
    assert backend_kind(cfg, manifest=manifest) == "tensorrt"
    assert inference_backend(cfg).ok
    build_tensorrt_engines(manifest, tmp_path, force=False)
    assert capsys.readouterr().out.count(": up to date: ") == len(static)


def test_missing_dla_core_builds_and_loads_the_gpu_engine(tmp_path: Path,
                                                          fake: FakeTensorRT) -> None:
    manifest = _setup(tmp_path)
    fake.dla_cores = 0  # e.g. an Orin Nano: no DLA
    lines: list[str] = []
    results = build_engines(list(manifest.models.values()), tmp_path, dla_core=0,
                            progress=lines.append)
    assert [r.status for r in results] == ["built"]
    assert any("has 0 DLA core(s): building for the GPU" in line for line in lines)
    assert not any(".dla" in p.name for p in (tmp_path / "trt").iterdir())
    assert backend_kind(_cfg(tmp_path, dla_core=0), MODEL, manifest) == "tensorrt"


def test_tensorrt_importable_but_no_engine_is_onnxruntime_everywhere(
        tmp_path: Path, fake: FakeTensorRT, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`build --list`, `doctor` and the loader give one answer, from one function: TensorRT
    importing is not enough, an accepted engine for this device is needed."""
    from appliance.cli import main
    from appliance.models.backend_checks import inference_backend

    manifest = _setup(tmp_path)
    cfg = _cfg(tmp_path)
    monkeypatch.setenv("EPHEMERA_MODELS_ENGINES_DIR", str(tmp_path))
    monkeypatch.setenv("EPHEMERA_MODELS_BACKEND", "auto")

    def listed() -> str:
        assert main(["build", "--list", "--manifest", str(manifest.path)]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines()
                   if line.startswith(MODEL + " "))
        return row.split()[4]

    def loaded() -> str:
        with ModelSet(cfg, manifest) as models:
            return models.get(MODEL).name

    doctor = inference_backend(cfg)  # the shipped manifest: no engines in tmp_path either
    assert not doctor.ok and "they run on ONNX Runtime" in doctor.detail
    assert (listed(), backend_kind(cfg, MODEL, manifest), loaded()) == ("onnxruntime",) * 3
    _build(tmp_path, manifest)
    assert (listed(), backend_kind(cfg, MODEL, manifest), loaded()) == ("tensorrt",) * 3
