"""Framing from the mesh: where the 4:5 portrait frame lies in the source photo.

The rule: the eye line 40 % from the top, the face centred horizontally and levelled (the roll
between the eyes removed), the face (forehead top to chin along the face's own axis) a third
of the frame's height: head and shoulders. The frame is an affine map from output pixels to
source pixels; the caller crops the source to the frame's bounding box (and shrinks a crop
more than 1.25 times the output's scale with an area filter) so the warp graph reads only what
it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.warp import PORTRAIT, normalised_matrix
from appliance.effects.headshot_parts.landmarks import CHIN, FOREHEAD_TOP
from appliance.vision.mesh import eye_centres

EYE_LINE = 0.40  # eye line, fraction of the height from the top
FACE_HEIGHT = 0.33  # forehead-to-chin length, fraction of the frame's height
MAX_SHRINK_SCALE = 1.25  # shrink a crop (area filter) until source/output <= this


@dataclass(frozen=True)
class Frame:
    """output (x, y, 1) -> source (x, y): ``matrix``; ``scale`` output pixels per source pixel."""

    matrix: npt.NDArray[np.float64]  # 2 x 3
    scale: float
    height: int = PORTRAIT[0]
    width: int = PORTRAIT[1]

    def to_output(self, points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Source mesh (N x 3, z in source pixels) -> output pixels (z scaled alike)."""
        full = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        inverse = np.linalg.inv(full)[:2]
        xy = points[:, :2].astype(np.float64) @ inverse[:, :2].T + inverse[:, 2]
        return np.column_stack([xy, points[:, 2] * self.scale]).astype(np.float32)


def frame_from_mesh(mesh: npt.NDArray[np.float32]) -> Frame:
    height, width = PORTRAIT
    right, left = eye_centres(mesh)  # the person's right eye is on the image's left
    middle = (right + left) / 2.0
    across = left - right
    roll = math.atan2(float(across[1]), float(across[0]))
    up = np.array([math.sin(roll), -math.cos(roll)])  # the face's "up" in the source
    face = float(abs(np.dot(mesh[FOREHEAD_TOP, :2] - mesh[CHIN, :2], up)))
    face = max(face, 1.0)
    scale = FACE_HEIGHT * height / face
    cos, sin = math.cos(roll) / scale, math.sin(roll) / scale
    linear = np.array([[cos, -sin], [sin, cos]])  # output offsets -> source offsets
    eye_out = np.array([width / 2.0, EYE_LINE * height])
    offset = middle - linear @ eye_out
    return Frame(np.column_stack([linear, offset]), scale)


@dataclass(frozen=True)
class Crop:
    """The part of the source the warp reads: rows/cols, the shrink, and the graph's matrix."""

    y0: int
    y1: int
    x0: int
    x1: int
    size: tuple[int, int]  # (width, height) after shrinking; the crop's own size if none
    matrix: npt.NDArray[np.float32]  # the warp graph's ``matrix`` input


def plan_crop(frame: Frame, image_height: int, image_width: int) -> Crop:
    """The bounding box of the frame in the source (clipped, with a margin for the cubic
    kernel), the size to shrink it to, and the matrix that maps output pixels into it."""
    corners = np.array([[0, 0, 1], [frame.width, 0, 1], [0, frame.height, 1],
                        [frame.width, frame.height, 1]], np.float64) @ frame.matrix.T
    x0 = int(np.clip(math.floor(corners[:, 0].min()) - 3, 0, image_width - 1))
    y0 = int(np.clip(math.floor(corners[:, 1].min()) - 3, 0, image_height - 1))
    x1 = int(np.clip(math.ceil(corners[:, 0].max()) + 4, x0 + 1, image_width))
    y1 = int(np.clip(math.ceil(corners[:, 1].max()) + 4, y0 + 1, image_height))
    cw, ch = x1 - x0, y1 - y0
    shrink = min(1.0, MAX_SHRINK_SCALE * frame.scale)
    sw, sh = max(16, round(cw * shrink)), max(16, round(ch * shrink))
    fx, fy = sw / cw, sh / ch
    # source pixel (x, y) -> shrunk crop pixel ((x - x0 + 0.5) * fx - 0.5, ...)
    to_crop = np.array([[fx, 0.0, (0.5 - x0) * fx - 0.5], [0.0, fy, (0.5 - y0) * fy - 0.5],
                        [0.0, 0.0, 1.0]])
    out_to_crop = (to_crop @ np.vstack([frame.matrix, [0.0, 0.0, 1.0]]))[:2]
    return Crop(y0, y1, x0, x1, (sw, sh), normalised_matrix(out_to_crop, sw, sh))


def shrink_crop(source: npt.NDArray[np.uint8], crop: Crop,
                out: npt.NDArray[np.uint8]) -> None:
    """Copy (or area-shrink) the crop of ``source`` into ``out`` (crop.size)."""
    region = source[crop.y0:crop.y1, crop.x0:crop.x1]
    if region.shape[1] == out.shape[1] and region.shape[0] == out.shape[0]:
        np.copyto(out, region)
    else:
        cv2.resize(region, crop.size, dst=out, interpolation=cv2.INTER_AREA)
