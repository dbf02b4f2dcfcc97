"""One person's head and shoulders, cut out once at video scale, with the mesh moved along.

Why once: the person mask (already refined to the photo's edges by the segmenter's guided
filter) and the photo are resampled a single time into a fixed-size premultiplied RGBA cut-out;
every frame then only warps that same cut-out, so the mask edge cannot flicker between frames.
The alpha also fades out towards the photo's own borders (a selfie whose shoulders end at the
image edge dissolves instead of ending in a straight line) and, when both people come from one
photo, towards the line between them, so one person's cut-out never carries the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.kiss import CUT_HEIGHT, CUT_WIDTH
from appliance.secure.buffers import REGISTRY, SecureBuffer

FACE_WIDTH = 256     # cheek-to-cheek width of every face in the video, pixels
# The cut-out is CUT_WIDTH x CUT_HEIGHT (the frame graph's input): 3 face widths by 4.
EYES_FROM_TOP = 1.5  # the eye line sits this many face widths below the cut-out's top
BORDER_FADE = 0.05   # alpha fade towards the photo's borders, fraction of the face width x 4
SPLIT_FADE = 0.12    # width of the fade between two people in one photo, in face widths

RIGHT_CHEEK, LEFT_CHEEK = 234, 454
EYE_CORNERS = (33, 133, 362, 263)


@dataclass
class Cutout:
    """A person at video scale: premultiplied RGBA (1, 4, h, w) and the mesh in its pixels."""

    rgba: npt.NDArray[np.float32]
    mesh: npt.NDArray[np.float32]       # (468, 3), x y z in cut-out pixels
    face_centre: tuple[float, float]    # between the eyes and the mouth
    buffers: list[SecureBuffer] = field(default_factory=list)

    def release(self) -> None:
        for buffer in self.buffers:
            buffer.release()

    @property
    def height(self) -> int:
        return int(self.rgba.shape[2])

    @property
    def width(self) -> int:
        return int(self.rgba.shape[3])


def face_width(mesh: npt.NDArray[Any]) -> float:
    return float(np.linalg.norm(mesh[LEFT_CHEEK, :2] - mesh[RIGHT_CHEEK, :2]))


def eye_centre(mesh: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    return np.asarray(mesh[list(EYE_CORNERS), :2], np.float64).mean(axis=0)


def crop_transform(mesh: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """2 x 3 affine photo pixels -> cut-out pixels: scale to FACE_WIDTH, eyes centred."""
    scale = FACE_WIDTH / max(face_width(mesh), 1.0)
    eyes = eye_centre(mesh)
    tx = CUT_WIDTH / 2 - scale * eyes[0]
    ty = EYES_FROM_TOP * FACE_WIDTH - scale * eyes[1]
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]])


def _edge_fade(affine: npt.NDArray[np.float64], photo_shape: tuple[int, int],
               split: tuple[float, float] | None) -> npt.NDArray[np.float32]:
    """(h, w) factor: 0 outside the photo, rising to 1 within BORDER_FADE of its borders and,
    with ``split`` (x of the line in photo pixels, +1 keep right / -1 keep left), across it."""
    scale, tx, ty = affine[0, 0], affine[0, 2], affine[1, 2]
    xs = (np.arange(CUT_WIDTH, dtype=np.float32) + 0.5 - tx) / scale
    ys = (np.arange(CUT_HEIGHT, dtype=np.float32) + 0.5 - ty) / scale
    h, w = photo_shape
    ramp = BORDER_FADE * 4 * FACE_WIDTH / scale
    fx = np.clip(np.minimum(xs, w - xs) / ramp, 0, 1)
    fy = np.clip(np.minimum(ys, h - ys) / ramp, 0, 1)
    if split is not None:
        line, keep = split
        width = SPLIT_FADE * FACE_WIDTH / scale
        fx = fx * np.clip(0.5 + keep * (xs - line) / width, 0, 1)
    # The cut-out's own borders: shoulders wider than it fade rather than end in a line.
    cols, rows = np.arange(CUT_WIDTH, dtype=np.float32), np.arange(CUT_HEIGHT, dtype=np.float32)
    fx = fx * np.clip(np.minimum(cols, CUT_WIDTH - 1 - cols) / (0.25 * FACE_WIDTH), 0, 1)
    fy = fy * np.clip(np.minimum(rows / (0.1 * FACE_WIDTH),
                                 (CUT_HEIGHT - 1 - rows) / (0.5 * FACE_WIDTH)), 0, 1)
    return np.outer(fy, fx).astype(np.float32)


def make_cutout(bgr: npt.NDArray[np.uint8], mask: npt.NDArray[np.float32],
                mesh: npt.NDArray[np.float32], owner: str,
                split: tuple[float, float] | None = None) -> Cutout:
    """Cut the person around ``mesh`` out of the photo into secure buffers of ``owner``."""
    affine = crop_transform(mesh)
    size = (CUT_WIDTH, CUT_HEIGHT)
    colour_buf, colour = REGISTRY.array((CUT_HEIGHT, CUT_WIDTH, 3), np.uint8, owner=owner,
                                        label="kiss-cut-colour")
    alpha_buf, alpha = REGISTRY.array((CUT_HEIGHT, CUT_WIDTH), np.float32, owner=owner,
                                      label="kiss-cut-alpha")
    try:
        if affine[0, 0] >= 0.5:
            cv2.warpAffine(bgr, affine, size, dst=colour, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        else:
            _shrink_warp(bgr, affine, colour, owner)
        cv2.warpAffine(mask, affine, size, dst=alpha, flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        alpha *= _edge_fade(affine, (bgr.shape[0], bgr.shape[1]), split)
        rgba_buf, rgba = REGISTRY.array((1, 4, CUT_HEIGHT, CUT_WIDTH), np.float32,
                                        owner=owner, label="kiss-cut-rgba")
        for channel in range(3):
            np.multiply(colour[:, :, channel], alpha, out=rgba[0, channel])
        rgba[0, 3] = alpha
    finally:
        colour_buf.release()
        alpha_buf.release()
    mesh_buf, moved = REGISTRY.array(mesh.shape, np.float32, owner=owner, label="kiss-mesh")
    moved[:, :2] = mesh[:, :2] * affine[0, 0] + affine[:, 2]
    moved[:, 2] = mesh[:, 2] * affine[0, 0]
    centre = (eye_centre(moved) + moved[[13, 14], :2].mean(axis=0)) / 2
    return Cutout(rgba=rgba, mesh=moved, face_centre=(float(centre[0]), float(centre[1])),
                  buffers=[rgba_buf, mesh_buf])


def _shrink_warp(bgr: npt.NDArray[np.uint8], affine: npt.NDArray[np.float64],
                 out: npt.NDArray[np.uint8], owner: str) -> None:
    """warpAffine after an area-averaging shrink, so a 12-megapixel photo does not alias."""
    factor = max(1, int(0.5 / affine[0, 0]))
    h, w = bgr.shape[0] // factor, bgr.shape[1] // factor
    small_buf, small = REGISTRY.array((h, w, 3), np.uint8, owner=owner, label="kiss-shrink")
    try:
        cv2.resize(bgr, (w, h), dst=small, interpolation=cv2.INTER_AREA)
        scaled = affine.copy()
        scaled[:, 0] *= bgr.shape[1] / w
        scaled[:, 1] *= bgr.shape[0] / h
        cv2.warpAffine(small, scaled, (out.shape[1], out.shape[0]), dst=out,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    finally:
        small_buf.release()
