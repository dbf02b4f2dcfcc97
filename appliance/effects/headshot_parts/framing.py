"""Framing from the mesh: where the 4:5 portrait frame lies in the source photo.

The rule: the eye line 40 % from the top, the face (its outline's mean) centred horizontally,
the face (forehead top
to chin) a third of the frame's height: head and shoulders. The frame is axis-aligned (the
photo is not rotated: a guest's slight head tilt is theirs), so it is a scale and an origin.
The caller crops the source to the frame's box (repeating the border where the frame reaches
past the photo), area-shrinks a crop larger than the output, and the framing graph enlarges
the rest bicubically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.warp import PORTRAIT, crop_box_roi
from appliance.effects.headshot_parts.landmarks import CHIN, FACE_OVAL, FOREHEAD_TOP
from appliance.vision.mesh import eye_centres

EYE_LINE = 0.40  # eye line, fraction of the height from the top
FACE_HEIGHT = 0.33  # forehead-to-chin length, fraction of the frame's height
MARGIN = 4  # source pixels around the frame's box, for the cubic kernel


@dataclass(frozen=True)
class Frame:
    """Output pixel (x, y) shows source pixel (x0 + x / scale, y0 + y / scale)."""

    x0: float
    y0: float
    scale: float  # output pixels per source pixel
    height: int = PORTRAIT[0]
    width: int = PORTRAIT[1]

    def to_output(self, points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Source mesh (N x 3, z in source pixels) -> output pixels (z scaled alike)."""
        out = points.astype(np.float64).copy()
        out[:, 0] = (out[:, 0] - self.x0) * self.scale
        out[:, 1] = (out[:, 1] - self.y0) * self.scale
        out[:, 2] *= self.scale
        return out.astype(np.float32)

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        return self.x0 + x / self.scale, self.y0 + y / self.scale

    def points_to_source(self, points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = points.astype(np.float64).copy()
        out[:, 0] = out[:, 0] / self.scale + self.x0
        out[:, 1] = out[:, 1] / self.scale + self.y0
        out[:, 2] /= self.scale
        return out.astype(np.float32)

    def differs(self, other: Frame, tolerance: float) -> bool:
        """Whether ``other`` moves the face by more than ``tolerance`` of the frame's width
        (or scales it by more than that fraction)."""
        shift = max(abs(self.x0 - other.x0), abs(self.y0 - other.y0)) * self.scale
        return shift > tolerance * self.width or abs(other.scale / self.scale - 1) > tolerance


def frame_from_mesh(mesh: npt.NDArray[np.float32]) -> Frame:
    height, width = PORTRAIT
    right, left = eye_centres(mesh)  # the person's right eye is on the image's left
    middle = (right + left) / 2.0
    face = max(float(np.hypot(*(mesh[FOREHEAD_TOP, :2] - mesh[CHIN, :2]))), 1.0)
    scale = FACE_HEIGHT * height / face
    centre = float(mesh[list(FACE_OVAL), 0].mean())  # the face's middle, also turned
    return Frame(centre - (width - 1) / 2.0 / scale,
                 float(middle[1]) - EYE_LINE * height / scale, scale)


@dataclass(frozen=True)
class Crop:
    """The source box the framing graph reads (may reach past the photo: the border is
    repeated), the size it is shrunk to, and the graph's ``roi``."""

    y0: int
    y1: int
    x0: int
    x1: int
    size: tuple[int, int]  # (width, height) after shrinking; the box's own size if none
    roi: npt.NDArray[np.float32]


def plan_crop(frame: Frame) -> Crop:
    last_x, last_y = frame.to_source(frame.width - 1, frame.height - 1)
    x0, y0 = math.floor(frame.x0) - MARGIN, math.floor(frame.y0) - MARGIN
    x1, y1 = math.ceil(last_x) + MARGIN + 1, math.ceil(last_y) + MARGIN + 1
    cw, ch = x1 - x0, y1 - y0
    # Shrink (area filter) so the box is no larger than the output: the graph only enlarges.
    shrink = min(1.0, frame.width / cw, frame.height / ch)
    sw, sh = max(16, math.floor(cw * shrink)), max(16, math.floor(ch * shrink))
    fx, fy = sw / cw, sh / ch

    def to_crop(x: float, y: float) -> tuple[float, float]:
        return (x - x0 + 0.5) * fx - 0.5, (y - y0 + 0.5) * fy - 0.5

    first = to_crop(frame.x0, frame.y0)
    last = to_crop(last_x, last_y)
    roi = crop_box_roi(first[0], first[1], last[0], last[1], sw, sh, frame.width, frame.height)
    return Crop(y0, y1, x0, x1, (sw, sh), roi)


def inside(crop: Crop, height: int, width: int) -> bool:
    """Whether the crop's box lies within the photo (no border to repeat)."""
    return crop.y0 >= 0 and crop.x0 >= 0 and crop.y1 <= height and crop.x1 <= width


def fill_crop(source: npt.NDArray[np.uint8], crop: Crop, box: npt.NDArray[np.uint8] | None,
              out: npt.NDArray[np.uint8] | None) -> None:
    """Copy the crop's box of ``source`` into ``box`` (its full size, border repeated past the
    photo), then area-shrink it into ``out`` when the crop is shrunk. A box inside the photo
    is shrunk straight from the photo (``box`` may then be None)."""
    height, width = source.shape[:2]
    if out is not None and inside(crop, height, width):
        cv2.resize(source[crop.y0:crop.y1, crop.x0:crop.x1], crop.size, dst=out,
                   interpolation=cv2.INTER_AREA)
        return
    if box is None:
        raise ValueError("a crop reaching past the photo needs a box to pad into")
    iy0, iy1 = max(crop.y0, 0), min(crop.y1, height)
    ix0, ix1 = max(crop.x0, 0), min(crop.x1, width)
    if iy0 >= iy1 or ix0 >= ix1:
        raise ValueError("the frame does not overlap the photo")
    cv2.copyMakeBorder(source[iy0:iy1, ix0:ix1], iy0 - crop.y0, crop.y1 - iy1,
                       ix0 - crop.x0, crop.x1 - ix1, cv2.BORDER_REPLICATE, dst=box)
    if out is not None:
        cv2.resize(box, crop.size, dst=out, interpolation=cv2.INTER_AREA)
