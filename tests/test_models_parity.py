"""The converted MediaPipe models compute what LiteRT computes, on real faces and random inputs.

Tolerance: |onnx - litert| <= 1e-4 + 1e-6 * |litert| per element. Outputs such as detector
regressors reach ~260 in magnitude, where a float32 ulp is 3e-5 and LiteRT's own kernels
(XNNPACK vs. its built-in ones) already differ by up to ~1.4e-4; the relative term is 8 ulps.
Outputs in [0, 1] (the segmentation mask) are held to ~1e-4 absolute. A float64 evaluation of
the same graph shows both runtimes are ~1e-4 from exact arithmetic on those large outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from appliance.models.manifest import ModelSource, load_manifest
from appliance.models.tflite_graph import fold_constants, read_tflite
from appliance.models.tflite_to_onnx import EMITTED_OPS, OPSET, convert_tflite, serialize
from tests.float64_reference import evaluate
from tests.litert_reference import run_litert
from tests.models_support import built, face_crops, model_input

MANIFEST = load_manifest()
# The models converted from TFLite (the pixel graphs are generated: tests/effects/).
CONVERTED = [name for name, entry in MANIFEST.models.items()
             if isinstance(entry.source, ModelSource)]
ATOL, RTOL = 1e-4, 1e-6
INPUTS = ["random", *face_crops()]


@pytest.fixture(scope="module")
def sessions() -> dict[str, ort.InferenceSession]:
    out = {}
    for name in CONVERTED:
        entry = MANIFEST.models[name]
        _, onnx_path = built(entry)
        out[name] = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return out


@pytest.mark.needs_models
@pytest.mark.parametrize("image", INPUTS)
@pytest.mark.parametrize("name", CONVERTED)
def test_onnx_matches_litert(name: str, image: str,
                             sessions: dict[str, ort.InferenceSession]) -> None:
    entry = MANIFEST.models[name]
    tfl, _ = built(entry)
    x = model_input(entry, None if image == "random" else face_crops()[image])
    reference = run_litert(tfl.read_bytes(), x)
    session = sessions[name]
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {entry.inputs[0].name: x.transpose(0, 3, 1, 2).copy()}),
                   strict=True))
    assert set(got) == set(reference) == {o.name for o in entry.outputs}
    for spec in entry.outputs:
        ref = reference[spec.name]
        if spec.layout.startswith("NCHW"):
            ref = ref.transpose(0, 3, 1, 2)
        out = got[spec.name]
        assert out.shape == ref.shape == spec.shape
        diff = np.abs(out - ref)
        worst = float(diff.max())
        assert np.all(diff <= ATOL + RTOL * np.abs(ref)), (
            f"{name}/{spec.name} on {image}: max |diff| {worst:.3g} (max |ref| "
            f"{float(np.abs(ref).max()):.3g})")


@pytest.mark.needs_models
@pytest.mark.parametrize("image", INPUTS)
@pytest.mark.parametrize("name", CONVERTED)
def test_onnx_is_as_close_to_exact_arithmetic_as_litert(
        name: str, image: str, sessions: dict[str, ort.InferenceSession]) -> None:
    """Against an independent float64 evaluation of the TFLite graph (tests/float64_reference).

    Separates conversion errors from float32 rounding: ONNX Runtime must be within 1e-4 of the
    exact result, or at most twice as far from it as LiteRT itself is.
    """
    entry = MANIFEST.models[name]
    tfl, _ = built(entry)
    x = model_input(entry, None if image == "random" else face_crops()[image])
    exact = evaluate(fold_constants(read_tflite(tfl.read_bytes(), name)), x.astype(np.float64))
    litert = run_litert(tfl.read_bytes(), x)
    session = sessions[name]
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {entry.inputs[0].name: x.transpose(0, 3, 1, 2).copy()}),
                   strict=True))
    for spec in entry.outputs:
        out = got[spec.name].transpose(0, 2, 3, 1) if spec.layout.startswith("NCHW") \
            else got[spec.name]
        onnx_error = float(np.abs(out - exact[spec.name]).max())
        litert_error = float(np.abs(litert[spec.name] - exact[spec.name]).max())
        assert litert_error <= 1e-3  # the reference itself agrees with LiteRT
        assert onnx_error <= max(1e-4, 2 * litert_error), (
            f"{name}/{spec.name} on {image}: ONNX Runtime {onnx_error:.3g} from exact, "
            f"LiteRT {litert_error:.3g}")


@pytest.mark.needs_models
def test_real_face_is_detected_with_a_confident_score(
        sessions: dict[str, ort.InferenceSession]) -> None:
    """A behavioural check on top of parity: the astronaut's face gives a high detector score."""
    entry = MANIFEST.models["face_detection_short"]
    x = model_input(entry, face_crops()["astronaut"]).transpose(0, 3, 1, 2).copy()
    scores = sessions[entry.name].run(["classificators"], {"input": x})[0]
    assert 1 / (1 + np.exp(-scores.max())) > 0.9
    noise = model_input(entry, None).transpose(0, 3, 1, 2).copy()
    assert 1 / (1 + np.exp(-sessions[entry.name].run(["classificators"],
                                                     {"input": noise})[0].max())) < 0.5


@pytest.mark.needs_models
@pytest.mark.parametrize("name", CONVERTED)
def test_converted_model_is_clean_deterministic_and_pinned(name: str) -> None:
    entry = MANIFEST.models[name]
    tfl, onnx_path = built(entry)
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= OPSET >= 17
    ops = {n.op_type for n in model.graph.node}
    assert ops <= EMITTED_OPS
    # Layout changes only at the boundary: no Transpose beyond one per 4-D reshape or output.
    transposes = sum(n.op_type == "Transpose" for n in model.graph.node)
    reshapes = sum(n.op_type == "Reshape" for n in model.graph.node)
    assert transposes <= reshapes + len(entry.outputs)
    assert [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim])
            for i in model.graph.input] == [(t.name, list(t.shape)) for t in entry.inputs]
    assert [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim])
            for o in model.graph.output] == [(t.name, list(t.shape)) for t in entry.outputs]
    import hashlib

    again = serialize(convert_tflite(tfl.read_bytes(), name))
    assert again == onnx_path.read_bytes()
    assert hashlib.sha256(again).hexdigest() == entry.onnx_sha256
