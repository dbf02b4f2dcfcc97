"""Person segmentation: full-resolution mask, edges that follow the photo, secure buffers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline
from appliance.vision.segment import guided_upsample
from tests.vision.faces_support import ASTRONAUT_FACE, photo


def test_guided_upsampling_snaps_the_mask_edge_to_the_image_edge() -> None:
    image = np.zeros((512, 512, 3), np.uint8)
    image[:, 260:] = 230  # a bright person against a dark wall, edge at x = 260
    low = np.zeros((32, 32), np.float32)
    low[:, 16:] = 1.0  # the model's coarse mask: edge near x = 256, 16 px per cell
    plain = cv2.resize(low, (512, 512), interpolation=cv2.INTER_LINEAR)
    _buffer, guided = guided_upsample(image, low, owner="guided-test")
    try:
        assert guided.shape == (512, 512) and guided.dtype == np.float32
        assert float(guided.min()) >= 0.0 and float(guided.max()) <= 1.0
        # Bilinear upsampling spreads the edge over a 16-px ramp; the guided filter puts one
        # sharp step exactly where the image's edge is.
        step = np.abs(np.diff(guided[256]))
        assert float(np.abs(np.diff(plain[256])).max()) < 0.1
        assert float(step.max()) > 0.3 and int(step.argmax()) == 259
    finally:
        REGISTRY.release_owner("guided-test")


@pytest.mark.needs_models
def test_astronaut_mask_covers_the_person_not_the_background(pipeline: FacePipeline,
                                                             owner: str) -> None:
    image = photo("astronaut")
    mask = pipeline.segment(image, owner)
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32
    x0, y0, x1, y1 = (int(v) for v in ASTRONAUT_FACE)
    assert float(mask[y0:y1, x0:x1].mean()) > 0.9
    assert float(mask[300:500, 100:250].mean()) > 0.9  # the orange suit
    assert float(mask[0:60, 380:512].mean()) < 0.1  # the wall by the rocket's nose


@pytest.mark.needs_models
@pytest.mark.parametrize("name", ["brick", "text"])
def test_no_person_in_photos_without_people(pipeline: FacePipeline, owner: str,
                                            name: str) -> None:
    # (Not coffee: the selfie model, trained on people in front of a camera, takes the cup
    # in the middle of that photo for a person; the face gates, not the mask, catch that.)
    assert float(pipeline.segment(photo(name), owner).max()) < 0.2


@pytest.mark.needs_models
def test_mask_lives_in_one_secure_buffer_of_the_job(pipeline: FacePipeline, owner: str) -> None:
    image = cv2.resize(photo("camera"), (1200, 900))
    mask = pipeline.segment(image, owner)
    live = REGISTRY.live(owner)
    assert len(live) == 1  # every intermediate was released
    assert np.shares_memory(mask, live[0].view())
    REGISTRY.release_owner(owner)
    assert float(np.abs(mask).max()) == 0.0  # released means wiped
