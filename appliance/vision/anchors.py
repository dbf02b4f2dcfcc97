"""SSD anchors for the two BlazeFace models, computed as MediaPipe's SsdAnchorsCalculator does.

Why computed rather than stored: the anchors are a pure function of a handful of options from
MediaPipe's graph configuration (face_detection_short_range.pbtxt, face_detection_full_range.pbtxt
and the shared face_detection.pbtxt). Keeping the options, not a table, makes them reviewable
against the source. Both models use ``fixed_anchor_size``, so every anchor is 1 x 1 in normalised
units and only the centres matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The subset of MediaPipe's SsdAnchorsCalculatorOptions these models use."""

    input_size: int  # square model input, pixels
    strides: tuple[int, ...]  # one per layer
    interpolated_scale_aspect_ratio: float  # > 0 adds a second anchor per cell
    anchor_offset: float = 0.5  # centre of the cell
    aspect_ratios: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class DetectorOptions:
    """Decoding options (MediaPipe's TensorsToDetectionsCalculatorOptions) for one model."""

    model: str  # manifest model name
    anchors: SsdAnchorOptions
    num_boxes: int
    scale: float  # x_scale = y_scale = w_scale = h_scale
    min_score: float  # after the sigmoid
    score_clipping: float = 100.0  # raw logits are clipped to +-this before the sigmoid
    num_keypoints: int = 6
    min_suppression_threshold: float = 0.3  # weighted NMS, intersection over union


# face_detection_short_range.pbtxt: 128x128, 4 layers, strides 8/16/16/16, 896 boxes.
SHORT_RANGE = DetectorOptions(
    model="face_detection_short",
    anchors=SsdAnchorOptions(input_size=128, strides=(8, 16, 16, 16),
                             interpolated_scale_aspect_ratio=1.0),
    num_boxes=896, scale=128.0, min_score=0.5)

# face_detection_full_range.pbtxt: 192x192, one layer of stride 4, no interpolated anchor,
# 2304 boxes.
FULL_RANGE = DetectorOptions(
    model="face_detection_full",
    anchors=SsdAnchorOptions(input_size=192, strides=(4,),
                             interpolated_scale_aspect_ratio=0.0),
    num_boxes=2304, scale=192.0, min_score=0.5)


@lru_cache(maxsize=4)
def anchor_centres(options: SsdAnchorOptions) -> npt.NDArray[np.float32]:
    """(N, 2) anchor centres (x, y) in [0, 1], in the order the model emits its boxes.

    Consecutive layers with the same stride share one feature map; each cell then carries one
    anchor per aspect ratio per layer, plus one interpolated anchor per layer when enabled.
    """
    centres: list[tuple[float, float]] = []
    layer = 0
    strides = options.strides
    while layer < len(strides):
        per_cell = 0
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += len(options.aspect_ratios)
            if options.interpolated_scale_aspect_ratio > 0:
                per_cell += 1
            last += 1
        stride = strides[layer]
        size = int(np.ceil(options.input_size / stride))
        for y in range(size):
            cy = (y + options.anchor_offset) / size
            for x in range(size):
                cx = (x + options.anchor_offset) / size
                centres.extend([(cx, cy)] * per_cell)
        layer = last
    return np.asarray(centres, dtype=np.float32)
