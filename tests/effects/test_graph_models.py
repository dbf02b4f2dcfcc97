"""Generated graphs and operator-supplied models as manifest entries: built by `ephemera build`,
opened through ModelSet.get(name).run, dynamic shapes bounded by the manifest's profiles."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from appliance.config import Config, load_config
from appliance.effects.graphs import generate
from appliance.effects.graphs.warp import normalised_matrix
from appliance.models.backend import BackendError
from appliance.models.build import build
from appliance.models.errors import HashMismatchError, ManifestError
from appliance.models.loader import ModelSet
from appliance.models.manifest import load_manifest

WARP = "appliance.effects.graphs.warp:warp_portrait"


def _cfg(engines: Path) -> Config:
    return load_config(env={"EPHEMERA_MODELS_ENGINES_DIR": str(engines),
                            "EPHEMERA_MODELS_BACKEND": "onnxruntime"})


def _entry(name: str, source: str, sha: str, inputs: str, outputs: str,
           profiles: str = "[]") -> str:
    return f"""
[models.{name}]
role = "test"
{source}
onnx_sha256 = "{sha}"
layout = "test"
normalisation = [0.0, 1.0]
precision = "fp32"
profiles = {profiles}
licence = "test"
inputs = {inputs}
outputs = {outputs}
"""


WARP_IO = ('[{ name = "image", shape = ["src_h", "src_w", 3], dtype = "uint8", layout = "HWC" },'
           ' { name = "matrix", shape = [2, 3], dtype = "float32", layout = "m" }]',
           '[{ name = "warped", shape = [1280, 1024, 3], dtype = "uint8", layout = "HWC" }]',
           '[{ src_h = [16, 800, 1000], src_w = [16, 600, 1000] }]')


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text("schema = 1\n" + body)
    return path


def test_generated_graph_is_built_and_runs_with_dynamic_shapes(tmp_path: Path) -> None:
    sha = hashlib.sha256(generate(WARP)).hexdigest()
    path = _write(tmp_path, _entry("warp", f'source = "generated"\ngenerator = "{WARP}"', sha,
                                   *WARP_IO))
    manifest = load_manifest(path)
    build(manifest, tmp_path)
    assert (tmp_path / "onnx" / "warp.onnx").read_bytes() == generate(WARP)
    with ModelSet(_cfg(tmp_path), manifest) as models:
        backend = models.get("warp")
        for h, w in ((300, 200), (640, 480), (300, 200)):
            image = np.full((h, w, 3), (10, 120, 240), np.uint8)
            scale = np.array([[w / 1024, 0, 0], [0, h / 1280, 0]])
            out = backend.run({"image": image, "matrix": normalised_matrix(scale, w, h)})
            assert out["warped"].shape == (1280, 1024, 3)
            assert np.all(out["warped"] == (10, 120, 240))
        with pytest.raises(BackendError, match="outside every profile"):
            backend.run({"image": np.zeros((1200, 20, 3), np.uint8),
                         "matrix": np.zeros((2, 3), np.float32)})


def test_generated_graph_with_a_stale_pin_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry("warp", f'source = "generated"\ngenerator = "{WARP}"',
                                   "1" * 64, *WARP_IO))
    with pytest.raises(HashMismatchError, match="does not match the pinned"):
        build(load_manifest(path), tmp_path)
    assert not (tmp_path / "onnx" / "warp.onnx").exists()


def _tiny_image_model() -> tuple[bytes, np.ndarray, np.ndarray]:
    """A learned-looking image-to-image network: 3x3 conv 3->3 with bias, then a sigmoid."""
    rng = np.random.default_rng(7)
    weight = rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, 3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["pre"], pads=[1, 1, 1, 1]),
         helper.make_node("Sigmoid", ["pre"], ["restored"])],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 24])],
        [helper.make_tensor_value_info("restored", TensorProto.FLOAT, [1, 3, 32, 24])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    return model.SerializeToString(), weight, bias


def _conv_reference(image: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    padded = np.pad(image[0], ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((3, 32, 24), np.float64)
    for o in range(3):
        for i in range(3):
            for dy in range(3):
                for dx in range(3):
                    out[o] += weight[o, i, dy, dx] * padded[i, dy:dy + 32, dx:dx + 24]
        out[o] += bias[o]
    return 1 / (1 + np.exp(-out))


OPERATOR_IO = ('[{ name = "image", shape = [1, 3, 32, 24], dtype = "float32", layout = "NCHW" }]',
               '[{ name = "restored", shape = [1, 3, 32, 24], dtype = "float32", '
               'layout = "NCHW" }]')


def test_operator_image_model_is_copied_in_and_runs(tmp_path: Path) -> None:
    data, weight, bias = _tiny_image_model()
    supplied = tmp_path / "supplied" / "restore.onnx"
    supplied.parent.mkdir()
    supplied.write_bytes(data)
    engines = tmp_path / "engines"
    sha = hashlib.sha256(data).hexdigest()
    path = _write(tmp_path, _entry("restore", f'source = "file"\npath = "{supplied}"', sha,
                                   *OPERATOR_IO))
    manifest = load_manifest(path)
    assert manifest.models["restore"].source.describe() == f"file:{supplied}"
    build(manifest, engines)
    image = np.random.default_rng(1).random((1, 3, 32, 24), dtype=np.float32)
    with ModelSet(_cfg(engines), manifest) as models:
        out = models.get("restore").run({"image": image})["restored"].copy()
    np.testing.assert_allclose(out[0], _conv_reference(image, weight, bias), atol=1e-5)


def test_operator_model_that_is_not_the_pinned_file_is_refused(tmp_path: Path) -> None:
    data, _, _ = _tiny_image_model()
    supplied = tmp_path / "restore.onnx"
    supplied.write_bytes(data + b"\x00")
    path = _write(tmp_path, _entry("restore", f'source = "file"\npath = "{supplied}"',
                                   hashlib.sha256(data).hexdigest(), *OPERATOR_IO))
    with pytest.raises(HashMismatchError, match="operator model restore"):
        build(load_manifest(path), tmp_path / "engines")
    assert not (tmp_path / "engines" / "onnx" / "restore.onnx").exists()


@pytest.mark.parametrize("profiles, words", [
    ("[]", "no profiles bound them"),
    ('[{ src_h = [16, 800, 1000] }]', "exactly the dynamic dimensions"),
    ('[{ src_h = [900, 800, 1000], src_w = [16, 600, 1000] }]', "min <= opt <= max"),
])
def test_manifest_refuses_unbounded_dynamic_dimensions(tmp_path: Path, profiles: str,
                                                       words: str) -> None:
    path = _write(tmp_path, _entry("warp", f'source = "generated"\ngenerator = "{WARP}"',
                                   "0" * 64, WARP_IO[0], WARP_IO[1], profiles))
    with pytest.raises(ManifestError, match=words):
        load_manifest(path)


def test_generator_outside_the_graphs_package_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry("evil", 'source = "generated"\ngenerator = "os:system"',
                                   "0" * 64, *OPERATOR_IO))
    with pytest.raises(ManifestError, match="generator must be"):
        load_manifest(path)


def test_every_manifest_graph_opens_through_the_booths_model_set() -> None:
    manifest = load_manifest()
    cfg = load_config()
    names = [n for n in manifest.models if n.startswith("fx_")]
    if not all(manifest.models[n].onnx_path(cfg.models.engines_dir).exists() for n in names):
        pytest.skip("graphs not built: run `ephemera build`")
    with ModelSet(cfg, manifest) as models:
        for name in names:
            assert models.get(name).name == "onnxruntime"
    assert isinstance(onnx.load_from_string(generate(WARP)), onnx.ModelProto)
