"""Photos and geometry for the face pipeline tests.

Photos are scikit-image's: astronaut and camera are real faces; coffee, brick and text have
none. Every variant (rotated, scaled, padded, composited, cropped, mirrored) is made from them
with these helpers.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from tests.helpers.images import sample_bgr

Image = npt.NDArray[np.uint8]


photo = sample_bgr  # a scikit-image sample photo as BGR uint8


# Hand-placed face boxes (x0, y0, x1, y1) in the original photos: forehead to chin, ear to ear
# of the inner face, the region BlazeFace is trained to box.
ASTRONAUT_FACE = (175.0, 65.0, 280.0, 175.0)
CAMERA_FACE = (190.0, 118.0, 275.0, 205.0)


def iou(a: tuple[float, ...] | npt.NDArray[np.float32],
        b: tuple[float, ...] | npt.NDArray[np.float32]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def place(canvas: Image, image: Image, x: int, y: int, scale: float) -> tuple[float, float,
                                                                              float, float]:
    """Paste ``image`` scaled by ``scale`` at (x, y); returns the affine (sx, sy, dx, dy)."""
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    canvas[y:y + h, x:x + w] = small
    return scale, scale, float(x), float(y)


def moved(box: tuple[float, float, float, float], scale: float, dx: float,
          dy: float) -> tuple[float, float, float, float]:
    return (box[0] * scale + dx, box[1] * scale + dy, box[2] * scale + dx, box[3] * scale + dy)


def rotate_about(image: Image, degrees: float) -> tuple[Image, npt.NDArray[np.float64]]:
    """Rotate the whole image (canvas grown to fit, grey fill); returns the 2x3 matrix."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    matrix[0, 2] += nw / 2 - w / 2
    matrix[1, 2] += nh / 2 - h / 2
    out = cv2.warpAffine(image, matrix, (nw, nh), borderValue=(128, 128, 128))
    return out, matrix
