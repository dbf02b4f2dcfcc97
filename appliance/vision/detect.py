"""Face detection with MediaPipe's two BlazeFace models, decoded as MediaPipe decodes them.

Strategy (why several passes): BlazeFace short range wants a face that fills a good part of its
128x128 input (selfie and booth distance), full range (192x192, stride-4 anchors) sees faces down
to about a tenth of its input. A group photo whose faces are 60-100 pixels wide in a 1280-pixel
image shrinks them to 9-15 pixels in a whole-image 192 pass, below what either model finds, so:

1. the image is first reduced once to a working copy of at most ``WORKING_PIXELS`` (1280 x 960
   for a 4:3 photo; a panorama keeps more width), so a 12-megapixel photo is not run through
   the models at full size and faces keep the same share of pixels whatever the aspect ratio;
2. short range on the whole working image, letterboxed (centred, black bars, never stretched),
   with an extra ``PAD_FRACTION`` margin on every side so a tight crop whose face fills the frame
   still looks like a face with some surroundings to the model;
3. full range on the whole working image, letterboxed;
4. when the working image is larger than ``TILE_SIDE``, full range again on overlapping square
   tiles of ``TILE_SIDE`` pixels (overlap ``TILE_OVERLAP``), which makes a 60-pixel face about
   18 pixels in the model input. Cost: one 192x192 full-range run per tile (3 x 2 tiles for a
   1280 x 853 or a 4:3 photo at the working size), see BENCHMARKS.md.

Detections of every pass are mapped to image pixels and merged: within a pass by MediaPipe's
weighted non-maximum suppression, across passes by keeping the higher score of two boxes that
overlap (IoU above 0.3, or one mostly inside the other, as a face cut by a tile edge is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY, SecureBuffer
from appliance.vision.anchors import FULL_RANGE, SHORT_RANGE, DetectorOptions, anchor_centres
from appliance.vision.resample import shrink_into
from appliance.vision.tensors import (
    MINUS_ONE_TO_ONE,
    ModelInput,
    ModelProvider,
    input_size,
    output_by_last_dim,
)

WORKING_PIXELS = 1280 * 960  # pixel budget of the copy the detectors see
PAD_FRACTION = 0.25  # margin around the whole image for the short-range pass (tight crops)
TILE_SIDE = 640  # full-range tile size in working pixels: 60-px face -> 18 px in the input
MIN_INPUT_FACE = 16.0  # whole-image pass, when tiles follow: smaller faces are left to tiles
TILE_OVERLAP = 0.25  # a face up to a quarter of a tile wide is whole in at least one tile
CROSS_PASS_IOU = 0.3  # same as MediaPipe's min_suppression_threshold
CROSS_PASS_CONTAINED = 0.7  # intersection over the smaller box: a face cut by a tile edge


@dataclass
class Detections:
    """N detections in image pixels: boxes (x0, y0, x1, y1), scores, 6 keypoints each (x, y).

    Keypoint order is MediaPipe's: right eye, left eye, nose tip, mouth centre, right ear
    tragion, left ear tragion (the person's right, which is on the image's left).
    """

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    keypoints: npt.NDArray[np.float32]

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                          np.zeros((0, 6, 2), np.float32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def concat(parts: list[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Detections.empty()
        return Detections(np.concatenate([p.boxes for p in parts]),
                          np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.keypoints for p in parts]))

    def take(self, index: npt.NDArray[np.intp] | list[int]) -> Detections:
        idx = np.asarray(index, dtype=np.intp)
        return Detections(self.boxes[idx], self.scores[idx], self.keypoints[idx])


def decode(raw_boxes: npt.NDArray[np.float32], raw_scores: npt.NDArray[np.float32],
           options: DetectorOptions) -> Detections:
    """Raw model outputs -> detections in normalised model-input coordinates, above min score.

    As TensorsToDetectionsCalculator with reverse_output_order: each row is x, y, w, h of the
    box centre and size, then 6 keypoints (x, y), all in input pixels relative to the anchor.
    """
    centres = anchor_centres(options.anchors)
    logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -options.score_clipping,
                     options.score_clipping)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= options.min_score)
    if keep.size == 0:
        return Detections.empty()
    raw = raw_boxes.reshape(-1, 4 + 2 * options.num_keypoints)[keep].astype(np.float32)
    anchor = centres[keep]
    cx = raw[:, 0] / options.scale + anchor[:, 0]
    cy = raw[:, 1] / options.scale + anchor[:, 1]
    w = raw[:, 2] / options.scale
    h = raw[:, 3] / options.scale
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, 4:].reshape(-1, options.num_keypoints, 2) / options.scale + anchor[:, None, :]
    return Detections(boxes.astype(np.float32), scores[keep].astype(np.float32),
                      kp.astype(np.float32))


def box_iou(box: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> npt.NDArray[
        np.float32]:
    """Intersection over union of one box against many (x0, y0, x1, y1)."""
    inter = _intersection(box, others)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def _intersection(box: npt.NDArray[np.float32],
                  others: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return (np.clip(w, 0, None) * np.clip(h, 0, None)).astype(np.float32)


def weighted_nms(dets: Detections, threshold: float) -> Detections:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Take the best remaining detection, gather every remaining one overlapping it by more than
    ``threshold`` IoU (itself included), and replace them by their score-weighted mean box and
    keypoints, keeping the best score. Averaging steadies the box compared with plain NMS.
    """
    if len(dets) == 0:
        return dets
    order = np.argsort(-dets.scores, kind="stable")
    remaining = order
    boxes, scores, kps = [], [], []
    while remaining.size:
        best = remaining[0]
        overlap = box_iou(dets.boxes[best], dets.boxes[remaining])
        group = remaining[overlap > threshold]
        if group.size == 0:  # degenerate (zero-area) box: keep it alone
            group = remaining[:1]
        remaining = remaining[~np.isin(remaining, group)]
        weights = dets.scores[group][:, None]
        total = float(weights.sum())
        boxes.append((dets.boxes[group] * weights).sum(axis=0) / total)
        kps.append((dets.keypoints[group] * weights[:, :, None]).sum(axis=0) / total)
        scores.append(dets.scores[best])
    return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                      np.asarray(kps, np.float32))


def merge_passes(dets: Detections) -> Detections:
    """Greedy suppression across passes: the higher score wins an overlapping pair."""
    if len(dets) == 0:
        return dets
    order = np.argsort(-dets.scores, kind="stable")
    kept: list[int] = []
    for index in order:
        box = dets.boxes[index]
        if kept:
            others = dets.boxes[kept]
            inter = _intersection(box, others)
            area = (box[2] - box[0]) * (box[3] - box[1])
            areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
            smaller = np.maximum(np.minimum(area, areas), 1e-12)
            if (box_iou(box, others) > CROSS_PASS_IOU).any() or \
                    (inter / smaller > CROSS_PASS_CONTAINED).any():
                continue
        kept.append(int(index))
    return dets.take(kept)


def sort_faces(dets: Detections) -> Detections:
    """Deterministic order: largest box first; equal areas left to right, then top to bottom."""
    if len(dets) == 0:
        return dets
    areas = (dets.boxes[:, 2] - dets.boxes[:, 0]) * (dets.boxes[:, 3] - dets.boxes[:, 1])
    order = np.lexsort((np.round(dets.boxes[:, 1], 1), np.round(dets.boxes[:, 0], 1),
                        -np.round(areas, 1)))
    return dets.take(order)


class FaceDetector:
    """Runs the passes described in the module docstring through the Backend interface."""

    def __init__(self, models: ModelProvider) -> None:
        self.models = models

    def detect(self, bgr: npt.NDArray[np.uint8], owner: str) -> Detections:
        """All faces in a BGR image, in image pixels, largest first (see ``sort_faces``)."""
        height, width = bgr.shape[:2]
        factor = min(1.0, math.sqrt(WORKING_PIXELS / (height * width)))
        work_buf: SecureBuffer | None = None
        work = bgr
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            work_buf, work = REGISTRY.array((size[1], size[0], 3), np.uint8, owner=owner,
                                            label="detect-working-copy")
            shrink_into(bgr, work, owner)
        try:
            regions = tiles(work.shape[1], work.shape[0])
            # With tiles, a face tiny in the whole-image pass is seen larger by a tile; at that
            # size the whole-image pass mostly mistakes a whole small portrait for a face.
            min_whole = MIN_INPUT_FACE if regions else 0.0
            passes = [self._run(SHORT_RANGE, work, _whole(work, PAD_FRACTION), owner),
                      self._run(FULL_RANGE, work, _whole(work, 0.0), owner, min_whole)]
            for region in regions:
                passes.append(self._run(FULL_RANGE, work, region, owner))
        finally:
            if work_buf is not None:
                work_buf.release()
        merged = merge_passes(Detections.concat(passes))
        if factor < 1.0:
            scale = np.float32(1.0 / factor)
            merged = Detections(merged.boxes * scale, merged.scores, merged.keypoints * scale)
        return sort_faces(merged)

    def _run(self, options: DetectorOptions, work: npt.NDArray[np.uint8],
             region: tuple[float, float, float], owner: str,
             min_size: float = 0.0) -> Detections:
        """One letterboxed pass over a square region (x0, y0, side) of the working image.

        Detections narrower than ``min_size`` model-input pixels are dropped.
        """
        backend = self.models.get(options.model)
        feed = ModelInput(backend, owner)
        size = input_size(feed.spec)[0]
        canvas_buf, canvas = REGISTRY.array((size, size, 3), np.uint8, owner=owner,
                                            label="detect-letterbox")
        try:
            letterbox(work, region, canvas)
            feed.fill(canvas, MINUS_ONE_TO_ONE)
            outputs = backend.run(feed.feeds())
            stride = 4 + 2 * options.num_keypoints
            raw_boxes = output_by_last_dim(outputs, stride, options.num_boxes)
            raw_scores = output_by_last_dim(outputs, 1, options.num_boxes)
            found = weighted_nms(decode(raw_boxes, raw_scores, options),
                                 options.min_suppression_threshold)
            if min_size > 0 and len(found):
                found = found.take(np.flatnonzero(
                    (found.boxes[:, 2] - found.boxes[:, 0]) * size >= min_size))
        finally:
            canvas_buf.release()
            feed.release()
        x0, y0, side = region
        offset = np.asarray([x0, y0], np.float32)
        return Detections(found.boxes * np.float32(side) + np.tile(offset, 2),
                          found.scores, found.keypoints * np.float32(side) + offset)


def _whole(image: npt.NDArray[np.uint8], pad: float) -> tuple[float, float, float]:
    """The square region centred on the image that holds all of it plus ``pad`` on each side."""
    height, width = image.shape[:2]
    side = max(height, width) * (1.0 + 2.0 * pad)
    return (width - side) / 2.0, (height - side) / 2.0, side


def tiles(width: int, height: int) -> list[tuple[float, float, float]]:
    """Overlapping square tiles of TILE_SIDE covering the image; none if it is small."""
    if max(width, height) <= TILE_SIDE * 1.25:
        return []
    step = TILE_SIDE * (1.0 - TILE_OVERLAP)

    def starts(extent: int) -> list[float]:
        if extent <= TILE_SIDE:
            return [(extent - TILE_SIDE) / 2.0]
        count = math.ceil((extent - TILE_SIDE) / step) + 1
        return [i * (extent - TILE_SIDE) / (count - 1) for i in range(count)]

    return [(x, y, float(TILE_SIDE)) for y in starts(height) for x in starts(width)]


def letterbox(image: npt.NDArray[np.uint8], region: tuple[float, float, float],
              canvas: npt.NDArray[np.uint8]) -> None:
    """Scale the square ``region`` (x0, y0, side; may reach past the image) into ``canvas``.

    Whatever lies outside the image is black, as MediaPipe's letterbox. The resize writes into
    the canvas view (``dst=``), so no image-sized temporary is allocated.
    """
    canvas.fill(0)
    size = canvas.shape[0]
    x0, y0, side = region
    scale = size / side
    height, width = image.shape[:2]
    ix0, iy0 = max(0.0, x0), max(0.0, y0)
    ix1, iy1 = min(float(width), x0 + side), min(float(height), y0 + side)
    if ix1 <= ix0 or iy1 <= iy0:
        return
    cx0 = round((ix0 - x0) * scale)
    cy0 = round((iy0 - y0) * scale)
    cx1 = min(size, max(cx0 + 1, round((ix1 - x0) * scale)))
    cy1 = min(size, max(cy0 + 1, round((iy1 - y0) * scale)))
    src = image[int(iy0):math.ceil(iy1), int(ix0):math.ceil(ix1)]
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    cv2.resize(src, (cx1 - cx0, cy1 - cy0), dst=canvas[cy0:cy1, cx0:cx1],
               interpolation=interpolation)


__all__ = ["Detections", "FaceDetector", "box_iou", "decode", "letterbox", "merge_passes",
           "sort_faces", "tiles", "weighted_nms"]
