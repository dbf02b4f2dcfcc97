"""Detection decoding and geometry without models: anchors, boxes, NMS, tiles, letterbox."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.models.backend import TensorSpec
from appliance.secure.buffers import REGISTRY
from appliance.vision.anchors import FULL_RANGE, SHORT_RANGE, anchor_centres
from appliance.vision.detect import (
    TILE_SIDE,
    Detections,
    decode,
    letterbox,
    merge_passes,
    sort_faces,
    tiles,
    weighted_nms,
)
from appliance.vision.tensors import MINUS_ONE_TO_ONE, ModelInput


def test_anchor_counts_match_the_models_outputs() -> None:
    # The models emit 896 and 2304 boxes (their output shapes); MediaPipe's options must
    # produce exactly as many anchors, in the same order.
    short = anchor_centres(SHORT_RANGE.anchors)
    full = anchor_centres(FULL_RANGE.anchors)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Stride 8: 16 x 16 cells, two anchors each, row by row.
    assert np.allclose(short[0], short[1]) and np.allclose(short[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(short[2], [1.5 / 16, 0.5 / 16])
    # Then the three stride-16 layers share an 8 x 8 map: six anchors per cell.
    assert np.allclose(short[512:518], [0.5 / 8, 0.5 / 8])
    assert np.allclose(short[518], [1.5 / 8, 0.5 / 8])
    # Full range: 48 x 48 cells, one anchor each.
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])
    assert np.allclose(full[48], [0.5 / 48, 1.5 / 48])


def test_decode_places_box_and_keypoints_relative_to_the_anchor() -> None:
    raw = np.zeros((896, 16), np.float32)
    scores = np.full((896, 1), -10.0, np.float32)
    scores[600] = 3.0
    raw[600, :4] = [12.8, -6.4, 32.0, 64.0]  # centre offset (0.1, -0.05), size (0.25, 0.5)
    raw[600, 4:6] = [-12.8, 0.0]  # right eye 0.1 left of the anchor
    found = decode(raw, scores, SHORT_RANGE)
    anchor = anchor_centres(SHORT_RANGE.anchors)[600]
    assert len(found) == 1
    cx, cy = anchor[0] + 0.1, anchor[1] - 0.05
    assert np.allclose(found.boxes[0], [cx - 0.125, cy - 0.25, cx + 0.125, cy + 0.25],
                       atol=1e-6)
    assert np.allclose(found.keypoints[0, 0], [anchor[0] - 0.1, anchor[1]], atol=1e-6)
    assert found.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-6)


def test_decode_clips_extreme_logits_and_drops_low_scores() -> None:
    raw = np.zeros((2304, 16), np.float32)
    scores = np.full((2304, 1), -1e9, np.float32)
    scores[0] = 1e9  # clipped to 100: sigmoid is 1, no overflow
    found = decode(raw, scores, FULL_RANGE)
    assert len(found) == 1 and found.scores[0] == pytest.approx(1.0)


def _dets(boxes: list[list[float]], scores: list[float]) -> Detections:
    b = np.asarray(boxes, np.float32)
    kp = np.repeat(b[:, None, :2], 6, axis=1)
    return Detections(b, np.asarray(scores, np.float32), kp)


def test_weighted_nms_averages_overlapping_boxes_by_score() -> None:
    dets = _dets([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.3, 0.8])
    merged = weighted_nms(dets, 0.3)
    assert len(merged) == 2
    assert merged.scores.tolist() == pytest.approx([0.9, 0.8])
    assert np.allclose(merged.boxes[0], [0.25, 0.25, 10.25, 10.25])  # (0.9*0 + 0.3*1) / 1.2
    assert np.allclose(merged.keypoints[0, 0], [0.25, 0.25])
    assert np.allclose(merged.boxes[1], [50, 50, 60, 60])


def test_merge_passes_drops_a_face_cut_by_a_tile_edge() -> None:
    whole = [100, 100, 200, 200]
    half = [150, 100, 200, 200]  # IoU 0.5 but also entirely inside the whole face
    inside = [160, 160, 190, 190]  # IoU 0.09, contained
    other = [300, 100, 400, 200]
    merged = merge_passes(_dets([half, whole, inside, other], [0.7, 0.9, 0.6, 0.8]))
    assert sorted(map(tuple, merged.boxes.tolist())) == [(100, 100, 200, 200),
                                                         (300, 100, 400, 200)]


def test_sort_faces_is_largest_first_then_left_to_right() -> None:
    dets = _dets([[300, 0, 340, 40], [0, 0, 40, 40], [100, 0, 200, 100]], [0.9, 0.8, 0.7])
    order = sort_faces(dets).boxes[:, 0].tolist()
    assert order == [100, 0, 300]


def test_tiles_cover_the_image_with_overlap() -> None:
    assert tiles(800, 600) == []  # small images: the whole-image passes suffice
    regions = tiles(1280, 853)
    assert len(regions) == 6  # 3 x 2
    covered = np.zeros((853, 1280), bool)
    for x, y, side in regions:
        assert side == TILE_SIDE
        covered[max(0, int(y)):int(y + side), max(0, int(x)):int(x + side)] = True
    assert covered.all()
    # Neighbouring tiles overlap by at least a quarter: a 100-px face is whole in one of them.
    xs = sorted({x for x, _, _ in regions})
    assert xs[1] - xs[0] <= TILE_SIDE * 0.75


def test_letterbox_centres_the_image_without_stretching() -> None:
    image = np.full((50, 100, 3), 200, np.uint8)
    canvas = np.full((128, 128, 3), 7, np.uint8)
    letterbox(image, (0.0, -25.0, 100.0), canvas)  # the centred square around a 2:1 image
    assert (canvas[:32] == 0).all() and (canvas[96:] == 0).all()  # black bars, old data gone
    assert (canvas[33:95] == 200).all()


class _NhwcLayout:
    """Only a tensor layout (no runtime): an NHWC input, as TFLite-style engines take."""

    def __init__(self) -> None:
        self.model = "layout-only"
        self.inputs = [TensorSpec("x", (1, 4, 4, 3), np.dtype(np.float32))]


def test_the_layout_adapter_writes_nhwc_too() -> None:
    feed = ModelInput(_NhwcLayout(), "layout-test")  # type: ignore[arg-type]
    try:
        pixels = np.zeros((4, 4, 3), np.uint8)
        pixels[..., 0] = 255  # pure blue in BGR
        feed.fill(pixels, MINUS_ONE_TO_ONE)
        assert np.allclose(feed.array[0, :, :, 2], 1.0)  # blue is the last RGB channel
        assert np.allclose(feed.array[0, :, :, :2], -1.0)
    finally:
        feed.release()
    assert REGISTRY.live("layout-test") == []
