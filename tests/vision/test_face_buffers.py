"""The pipeline leaves no guest pixels behind: every intermediate is a released secure buffer."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.errors import UserFacingError
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline, draw_faces
from appliance.vision.tensors import ZERO_TO_ONE, ModelInput
from tests.vision.faces_support import photo

pytestmark = pytest.mark.needs_models


def test_detect_and_analyse_keep_only_the_meshes(pipeline: FacePipeline, owner: str) -> None:
    big = np.ascontiguousarray(np.tile(photo("astronaut"), (2, 3, 1)))  # 1536 x 1024: tiles
    assert pipeline.detect(big, owner) != []
    assert REGISTRY.live(owner) == []  # every intermediate was released
    faces = pipeline.detect(big, owner, mesh=True)
    assert len(faces) == 6
    live = REGISTRY.live(owner)
    assert [b.label for b in live] == ["mesh-points"] * 6  # the other passes' were released
    for face in faces:
        assert face.mesh is not None
        assert sum(np.shares_memory(face.mesh, b.view()) for b in live) == 1
    REGISTRY.release_owner(owner)
    assert all(float(np.abs(f.mesh).max()) == 0.0 for f in faces if f.mesh is not None)
    pipeline.analyse(photo("astronaut"), owner, faces_needed=1, need_eyes_open=True)
    assert [b.label for b in REGISTRY.live(owner)] == ["mesh-points"]


def test_a_refused_photo_leaves_nothing(pipeline: FacePipeline, owner: str) -> None:
    with pytest.raises(UserFacingError):
        pipeline.analyse(photo("brick"), owner, faces_needed=1)
    assert REGISTRY.live(owner) == []


def test_draw_faces_returns_an_annotated_copy_in_a_secure_buffer(pipeline: FacePipeline,
                                                                 owner: str) -> None:
    image = photo("astronaut")
    before = image.copy()
    faces = pipeline.detect(image, owner, mesh=True)
    drawn = draw_faces(image, faces, owner)
    assert np.array_equal(image, before)  # the input is untouched
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    x0, y0, x1, _y1 = (round(v) for v in faces[0].box)
    assert (drawn[y0, x0:x1] != image[y0, x0:x1]).any()  # the box's top edge
    assert sum(np.shares_memory(drawn, b.view()) for b in REGISTRY.live(owner)) == 1


def test_zeroise_wipes_the_models_buffers(pipeline: FacePipeline, owner: str) -> None:
    pipeline.detect(photo("astronaut"), owner, mesh=True)
    pipeline.zeroise()
    for name in ("face_detection_short", "face_landmark"):
        backend = pipeline.models.get(name)
        for spec in backend.inputs:
            getter = getattr(backend, "input_buffer", None)
            if callable(getter):
                assert float(np.abs(getter(spec.name)).max()) == 0.0


def test_preprocessing_writes_straight_into_the_backend_input(face_models: object) -> None:
    backend = face_models.get("face_landmark")  # type: ignore[attr-defined]
    feed = ModelInput(backend, "feed-test")
    assert np.shares_memory(feed.array, backend.input_buffer(backend.inputs[0].name))
    assert REGISTRY.live("feed-test") == []  # no copy of the pixels was allocated
    pixels = np.zeros((192, 192, 3), np.uint8)
    pixels[..., 2] = 255  # pure red in BGR
    feed.fill(pixels, ZERO_TO_ONE)
    assert feed.array.shape == (1, 3, 192, 192)  # NCHW, RGB order, [0, 1]
    assert float(feed.array[0, 0].min()) == 1.0 and float(feed.array[0, 1:].max()) == 0.0
