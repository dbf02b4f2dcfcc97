"""The 468-point face mesh on a crop rotated by the eyes, as MediaPipe's face_landmark_front.

Why this crop: the landmark model was trained on upright faces filling a square with a margin.
MediaPipe derives that square from the detection (face_detection_front_detection_to_roi): centre
of the box, rotation that makes the line from keypoint 0 (right eye) to keypoint 1 (left eye)
horizontal, long side of the box scaled by 1.5. A second pass re-derives the square from the mesh
itself (face_landmark_landmarks_to_roi: bounding box of the points, rotation from landmarks 33 to
263, the outer eye corners, same 1.5 scale), which steadies the points when the detector's box was
loose. The face-presence output (a logit) rejects crops that are not faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY, SecureBuffer
from appliance.vision.tensors import (
    ZERO_TO_ONE,
    ModelInput,
    ModelProvider,
    input_size,
    output_by_size,
)

MODEL = "face_landmark"
NUM_LANDMARKS = 468
ROI_SCALE = 1.5  # RectTransformationCalculator scale_x/scale_y in both ROI graphs
PRESENCE_THRESHOLD = 0.5  # face_landmark_cpu: ThresholdingCalculator on the sigmoid
# Indices into the 468 points used by the ROI and by the quality gates.
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362


@dataclass(frozen=True)
class RotatedRect:
    """A square crop in image pixels: centre, side, rotation (radians, clockwise on screen)."""

    cx: float
    cy: float
    side: float
    rotation: float

    def to_crop(self, size: int) -> npt.NDArray[np.float64]:
        """2x3 affine matrix from image pixels to a size x size crop."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        half = self.side / 2.0
        # Corners of the rotated square: top-left, top-right, bottom-left.
        def corner(dx: float, dy: float) -> tuple[float, float]:
            return (self.cx + dx * cos - dy * sin, self.cy + dx * sin + dy * cos)

        src = np.asarray([corner(-half, -half), corner(half, -half), corner(-half, half)],
                         np.float32)
        dst = np.asarray([[0, 0], [size, 0], [0, size]], np.float32)
        return np.asarray(cv2.getAffineTransform(src, dst), np.float64)


@dataclass
class MeshResult:
    """Mesh points (468, 3) in image pixels (z: same scale as x, negative towards the camera),
    the face-presence probability and the crop it came from.

    The points are a face's geometry, as identifying as its pixels: they live in a secure
    buffer of the job (``buffer``), wiped when the job is released.
    """

    points: npt.NDArray[np.float32]
    presence: float
    rect: RotatedRect
    buffer: SecureBuffer


def _normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rect_from_points(box: tuple[float, float, float, float], start: npt.NDArray[np.float32],
                     end: npt.NDArray[np.float32]) -> RotatedRect:
    """DetectionsToRects + RectTransformation: rotation from start->end, square long side x 1.5."""
    x0, y0, x1, y1 = box
    rotation = _normalize_radians(
        0.0 - math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0])))
    side = max(x1 - x0, y1 - y0) * ROI_SCALE
    return RotatedRect((x0 + x1) / 2.0, (y0 + y1) / 2.0, side, rotation)


def rect_from_detection(box: npt.NDArray[np.float32],
                        keypoints: npt.NDArray[np.float32]) -> RotatedRect:
    """The first-pass crop, from a detection's box and its two eye keypoints."""
    return rect_from_points((float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                            keypoints[0], keypoints[1])


def rect_from_mesh(points: npt.NDArray[np.float32]) -> RotatedRect:
    """The second-pass crop, re-derived from the mesh (outer eye corners set the rotation)."""
    xy = points[:, :2]
    box = (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()),
           float(xy[:, 1].max()))
    return rect_from_points(box, xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER])


class FaceMesher:
    """Runs the landmark model on rotated crops through the Backend interface."""

    def __init__(self, models: ModelProvider) -> None:
        self.models = models

    def run(self, bgr: npt.NDArray[np.uint8], rect: RotatedRect, owner: str) -> MeshResult:
        """Mesh of the face inside ``rect``; points mapped back to image pixels."""
        backend = self.models.get(MODEL)
        feed = ModelInput(backend, owner)
        size = input_size(feed.spec)[0]
        crop_buf, crop = REGISTRY.array((size, size, 3), np.uint8, owner=owner,
                                        label="mesh-crop")
        try:
            matrix = rect.to_crop(size)
            cv2.warpAffine(bgr, matrix, (size, size), dst=crop, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            feed.fill(crop, ZERO_TO_ONE)
            outputs = backend.run(feed.feeds())
            raw = output_by_size(outputs, NUM_LANDMARKS * 3).reshape(NUM_LANDMARKS, 3)
            logit = float(output_by_size(outputs, 1).reshape(-1)[0])
            points_buf, points = REGISTRY.array((NUM_LANDMARKS, 3), np.float32, owner=owner,
                                                label="mesh-points")
            crop_to_image(raw, matrix, rect.side / size, points)
        finally:
            crop_buf.release()
            feed.release()
        presence = 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))
        return MeshResult(points, presence, rect, points_buf)

    def run_refined(self, bgr: npt.NDArray[np.uint8], rect: RotatedRect, owner: str,
                    passes: int = 2) -> MeshResult:
        """First pass on ``rect``; each further pass on the crop re-derived from the mesh.

        Returns the pass with the highest face presence. The detector's eye keypoints are poor
        on a turned head (a profile can come out tilted by 40 degrees), which lowers the first
        pass's presence; the mesh-derived crop corrects the rotation.
        """
        best = self.run(bgr, rect, owner)
        current = best
        for _ in range(passes - 1):
            previous = current
            current = self.run(bgr, rect_from_mesh(previous.points), owner)
            if previous is not best:
                previous.buffer.release()
            if current.presence >= best.presence:
                if current is not best:
                    best.buffer.release()
                best = current
        if current is not best:
            current.buffer.release()
        return best


def crop_to_image(raw: npt.NDArray[np.float32], matrix: npt.NDArray[np.float64],
                  z_scale: float, out: npt.NDArray[np.float32]) -> None:
    """Crop pixels (x, y, z) -> image pixels in ``out``, by the inverse of the crop's map.

    Computed column by column in ``out`` (its z column as scratch), so no copy of the
    geometry is left behind in memory nobody wipes.
    """
    inverse = cv2.invertAffineTransform(matrix)
    x, y, z = raw[:, 0], raw[:, 1], raw[:, 2]
    scratch = out[:, 2]
    for row in (0, 1):
        column = out[:, row]
        np.multiply(x, np.float32(inverse[row, 0]), out=column)
        column += np.float32(inverse[row, 2])
        np.multiply(y, np.float32(inverse[row, 1]), out=scratch)
        column += scratch
    np.multiply(z, np.float32(z_scale), out=out[:, 2])


def eye_centres(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(2, 2): the person's right and left eye centres (mid-points of the eye corners)."""
    right = (points[RIGHT_EYE_OUTER, :2] + points[RIGHT_EYE_INNER, :2]) / 2.0
    left = (points[LEFT_EYE_OUTER, :2] + points[LEFT_EYE_INNER, :2]) / 2.0
    return np.stack([right, left]).astype(np.float32)
