"""The pipeline leaves no guest pixels behind: every intermediate is a released secure buffer."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.errors import UserFacingError
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline, draw_faces
from tests.vision.faces_support import photo

pytestmark = pytest.mark.needs_models


def test_detect_and_analyse_release_everything(pipeline: FacePipeline, owner: str) -> None:
    big = np.ascontiguousarray(np.tile(photo("astronaut"), (2, 3, 1)))  # 1536 x 1024: tiles
    assert len(pipeline.detect(big, owner, mesh=True)) == 6
    assert REGISTRY.live(owner) == []
    pipeline.analyse(photo("astronaut"), owner, faces_needed=1, need_eyes_open=True)
    assert REGISTRY.live(owner) == []


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
    assert [np.shares_memory(drawn, b.view()) for b in REGISTRY.live(owner)] == [True]


def test_zeroise_wipes_the_models_buffers(pipeline: FacePipeline, owner: str) -> None:
    pipeline.detect(photo("astronaut"), owner, mesh=True)
    pipeline.zeroise()
    for name in ("face_detection_short", "face_landmark"):
        backend = pipeline.models.get(name)
        for spec in backend.inputs:
            getter = getattr(backend, "input_buffer", None)
            if callable(getter):
                assert float(np.abs(getter(spec.name)).max()) == 0.0
