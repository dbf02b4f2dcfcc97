"""The decoding constants (taken from MediaPipe's graph configs) agree with the built models."""

from __future__ import annotations

import pytest

from appliance.models.manifest import load_manifest
from appliance.vision.anchors import FULL_RANGE, SHORT_RANGE, DetectorOptions
from appliance.vision.tensors import MINUS_ONE_TO_ONE, ZERO_TO_ONE, Normalisation, input_size

pytestmark = pytest.mark.needs_models


def _range(norm: Normalisation) -> tuple[float, float]:
    return (norm.offset, round(255.0 * norm.scale + norm.offset, 6))


@pytest.mark.parametrize("options", [SHORT_RANGE, FULL_RANGE], ids=lambda o: o.model)
def test_detector_options_match_the_model(face_models: object,
                                          options: DetectorOptions) -> None:
    backend = face_models.get(options.model)  # type: ignore[attr-defined]
    size = options.anchors.input_size
    assert backend.inputs[0].shape == (1, 3, size, size)
    assert input_size(backend.inputs[0]) == (size, size)
    assert sorted(int(o.nbytes) // 4 for o in backend.outputs) == sorted(
        [options.num_boxes, options.num_boxes * 16])
    assert options.scale == size
    assert load_manifest().models[options.model].normalisation == _range(MINUS_ONE_TO_ONE)


def test_mesh_and_segmentation_match_their_models(face_models: object) -> None:
    mesh = face_models.get("face_landmark")  # type: ignore[attr-defined]
    assert mesh.inputs[0].shape == (1, 3, 192, 192)
    assert sorted(int(o.nbytes) // 4 for o in mesh.outputs) == [1, 468 * 3]
    seg = face_models.get("selfie_segmentation")  # type: ignore[attr-defined]
    assert seg.inputs[0].shape == (1, 3, 256, 256)
    assert [int(o.nbytes) // 4 for o in seg.outputs] == [256 * 256]
    manifest = load_manifest().models
    for name in ("face_landmark", "selfie_segmentation"):
        assert manifest[name].normalisation == _range(ZERO_TO_ONE)
