"""The local warps of one face, driven by its mesh: turn, pursed lips and closing eyelids.

All three are written as a look-up map over the cut-out (for each cut-out pixel, which cut-out
pixel to show there), which the frame graph samples after its homography:

* turn: the homography only shows the face as a tilted plane; a real head's nose, lips and brows
  stand in front of the cheeks and move further when it turns. Each mesh point moves by
  ``-z * sin(yaw)`` (z relative to the cheeks, negative towards the camera) and the moves are
  spread into a smooth field by normalised convolution; the field is made once and scaled per
  frame (``sin`` is nearly linear below 20 degrees);
* purse: the mouth contracts towards its centre horizontally and grows a little vertically under
  a smooth elliptical weight; also made once and scaled;
* eyelids: per frame, per eye, in the eye's own axes: the upper lid's skin (from lash line to
  brow side) stretches down to a closing line where the upper lashes, slightly thickened, meet
  the lower lid, the eye disappears under it and the lower lid stays; a continuous
  piecewise-linear map on every column across the eye, faded out beyond the corners.
  Closing is not linear in time, so it is computed each frame, on the eye patch only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.kiss_parts.cutout import LEFT_CHEEK, RIGHT_CHEEK, Cutout, face_width

# Lash-line contours from the outer to the inner corner (MediaPipe's 468-point topology).
EYES = (
    # (lower lid corner to corner, upper lid corner to corner)
    ((33, 7, 163, 144, 145, 153, 154, 155, 133), (33, 246, 161, 160, 159, 158, 157, 173, 133)),
    ((263, 249, 390, 373, 374, 380, 381, 382, 362),
     (263, 466, 388, 387, 386, 385, 384, 398, 362)),
)
MOUTH_CORNERS = (61, 291)
LIPS_CENTRE = (13, 14)
UPPER_LIP_TOP, LOWER_LIP_BOTTOM = 0, 17
FOREHEAD, CHIN = 10, 152

CLOSED_AT = 0.72        # the closed lid line, as a fraction of the way from upper to lower lid
LID_SKIN = 0.38         # upper-lid skin that stretches, in eye widths above the lash line
BELOW_LID = 0.12        # lower-lid skin that compresses, in eye widths below the lash line
LASH_BAND = 0.035       # half-height of the closed lash line, in eye widths
CORNER_FADE = (1.0, 1.35)  # |u| (1 = the eye's corner) over which the lid warp fades out
PURSE_SQUEEZE = 0.20    # horizontal contraction of the mouth at full purse
PURSE_POUT = 0.08       # vertical growth of the lips at full purse
SPLAT_SIGMA = 0.06      # spread of the turn field, in face widths


@dataclass
class FaceFields:
    """The precomputed fields of one face and the box they live in (cut-out pixels)."""

    box: tuple[int, int, int, int]                 # x0, y0, x1, y1
    turn: npt.NDArray[np.float32]                  # (2, bh, bw) forward move at sin(yaw) = 1
    purse: npt.NDArray[np.float32]                 # (2, bh, bw) forward move at full purse
    eyes: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]  # lid contours


def _face_box(cut: Cutout) -> tuple[int, int, int, int]:
    points = cut.mesh[:, :2]
    margin = 0.25 * face_width(cut.mesh)
    x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int)
    return (max(0, int(x0)), max(0, int(y0)), min(cut.width, int(x1)), min(cut.height, int(y1)))


def _turn_field(cut: Cutout, box: tuple[int, int, int, int]) -> npt.NDArray[np.float32]:
    """Forward x displacement of the face at sin(yaw) = 1 (turning towards +x)."""
    x0, y0, x1, y1 = box
    mesh = cut.mesh
    cheeks_z = float((mesh[RIGHT_CHEEK, 2] + mesh[LEFT_CHEEK, 2]) / 2)
    moves = -(mesh[:, 2] - cheeks_z)
    # A ring of fixed points just outside the face keeps the field at zero beyond it.
    centre = mesh[:, :2].mean(axis=0)
    ring_angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radius = (mesh[:, :2].max(axis=0) - mesh[:, :2].min(axis=0)) * 0.62
    ring = centre + np.stack([np.cos(ring_angles), np.sin(ring_angles)], 1) * radius
    points = np.concatenate([mesh[:, :2], ring])
    values = np.concatenate([moves, np.zeros(len(ring))])
    h, w = y1 - y0, x1 - x0
    weight = np.zeros((h, w), np.float32)
    total = np.zeros((h, w), np.float32)
    cols = np.clip(np.round(points[:, 0] - x0).astype(int), 0, w - 1)
    rows = np.clip(np.round(points[:, 1] - y0).astype(int), 0, h - 1)
    np.add.at(weight, (rows, cols), 1.0)
    np.add.at(total, (rows, cols), values.astype(np.float32))
    sigma = SPLAT_SIGMA * face_width(mesh)
    cv2.GaussianBlur(weight, (0, 0), sigma, dst=weight)
    cv2.GaussianBlur(total, (0, 0), sigma, dst=total)
    field = np.zeros((2, h, w), np.float32)
    field[0] = total / np.maximum(weight, 1e-6)
    # Where no point is near (weight tiny) the quotient is noise: fade to zero there.
    field[0] *= np.clip(weight / (weight.max() * 0.02), 0, 1)
    return field


def _purse_field(cut: Cutout, box: tuple[int, int, int, int]) -> npt.NDArray[np.float32]:
    x0, y0, x1, y1 = box
    mesh = cut.mesh
    left, right = mesh[MOUTH_CORNERS[0], :2], mesh[MOUTH_CORNERS[1], :2]
    centre = mesh[list(LIPS_CENTRE), :2].mean(axis=0)
    half_width = float(np.linalg.norm(right - left)) / 2
    half_height = max(float(mesh[LOWER_LIP_BOTTOM, 1] - mesh[UPPER_LIP_TOP, 1]) / 2, 4.0)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs - centre[0], ys - centre[1]
    weight = np.exp(-((dx / (1.3 * half_width)) ** 2 + (dy / (2.2 * half_height)) ** 2))
    field = np.empty((2, y1 - y0, x1 - x0), np.float32)
    field[0] = -PURSE_SQUEEZE * dx * weight
    field[1] = PURSE_POUT * dy * weight
    return field


def prepare(cut: Cutout) -> FaceFields:
    box = _face_box(cut)
    eyes = [(cut.mesh[list(lower), :2].astype(np.float64),
             cut.mesh[list(upper), :2].astype(np.float64)) for lower, upper in EYES]
    return FaceFields(box=box, turn=_turn_field(cut, box), purse=_purse_field(cut, box),
                      eyes=eyes)


def _lid_backward(qx: npt.NDArray[Any], qy: npt.NDArray[Any], lower: npt.NDArray[np.float64],
                  upper: npt.NDArray[np.float64], closed: float) -> None:
    """Map points (in place) through one eye's closing lid, ``closed`` in 0..1."""
    outer, inner = upper[0], upper[-1]
    origin = (outer + inner) / 2
    axis = inner - outer
    eye_width = float(np.linalg.norm(axis))
    e1 = axis / eye_width
    e2 = np.array([-e1[1], e1[0]])  # image-down when the eye is level
    if e2[1] < 0:
        e2 = -e2
    half = eye_width / 2

    def local(points: npt.NDArray[np.float64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        rel = points - origin
        return rel @ e1 / half, rel @ e2

    u_low, v_low = local(lower)
    u_up, v_up = local(upper)
    order_low, order_up = np.argsort(u_low), np.argsort(u_up)
    rel_x, rel_y = qx - origin[0], qy - origin[1]
    u = (rel_x * e1[0] + rel_y * e1[1]) / half
    v = rel_x * e2[0] + rel_y * e2[1]
    lid_up = np.interp(u, u_up[order_up], v_up[order_up])
    lid_low = np.interp(u, u_low[order_low], v_low[order_low])
    lid_low = np.maximum(lid_low, lid_up)
    top = float(v_up.min()) - LID_SKIN * eye_width
    bottom = float(v_low.max()) + BELOW_LID * eye_width
    line = lid_up + closed * CLOSED_AT * (lid_low - lid_up)     # where the lash line is now
    hidden = lid_up + closed * (lid_low - lid_up)               # what it has covered so far
    band = LASH_BAND * eye_width * closed   # the closed lash line: the lashes, thickened
    upper_end, lower_start = line - band, line + band
    lash_from, lash_to = lid_up - band, lid_up + band
    above = (v >= top) & (v < upper_end)
    lashes = (v >= upper_end) & (v < lower_start)
    below = (v >= lower_start) & (v <= bottom)
    mapped = v.copy()
    mapped[above] = (top + (v - top) * (lash_from - top)
                     / np.maximum(upper_end - top, 1e-3))[above]
    mapped[lashes] = (lash_from + (v - upper_end) * (lash_to - lash_from)
                      / np.maximum(2 * band, 1e-3))[lashes]
    mapped[below] = (np.maximum(hidden, lash_to) + (v - lower_start)
                     * (bottom - np.maximum(hidden, lash_to))
                     / np.maximum(bottom - lower_start, 1e-3))[below]
    fade = 1.0 - np.clip((np.abs(u) - CORNER_FADE[0]) / (CORNER_FADE[1] - CORNER_FADE[0]), 0, 1)
    shift = (mapped - v) * fade
    qx += shift * e2[0]
    qy += shift * e2[1]


def write_map(fields: FaceFields, identity: npt.NDArray[np.float32],
              out: npt.NDArray[np.float32], turn: float, purse: float, closed: float) -> None:
    """This frame's look-up map (h, w, 2) into ``out``: identity plus the face's warps.

    ``turn`` is sin(yaw) signed towards +x; ``purse`` and ``closed`` are 0..1. Every warp lives
    inside the face box, so only that window is rewritten; ``out`` must hold the identity
    outside it (``identity_map`` once, before the first frame).
    """
    x0, y0, x1, y1 = fields.box
    window = out[y0:y1, x0:x1]
    np.copyto(window, identity[y0:y1, x0:x1])
    # Backward from forward moves: show at p what was at p - move(p) (moves are smooth, small).
    for axis in (0, 1):
        if turn:
            window[..., axis] -= turn * fields.turn[axis]
        if purse:
            window[..., axis] -= purse * fields.purse[axis]
    if closed > 0:
        for lower, upper in fields.eyes:
            _close_eye(fields, out, lower, upper, turn, purse, closed)


def _close_eye(fields: FaceFields, out: npt.NDArray[np.float32],
               lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64], turn: float,
               purse: float, closed: float) -> None:
    """Apply one eye's lid warp to the map, on the patch where the (moved) eye now is."""
    x0, y0, x1, y1 = fields.box
    points = np.concatenate([lower, upper])
    width = float(np.linalg.norm(upper[-1] - upper[0]))
    centre = points.mean(axis=0)
    cx = min(max(int(centre[0]) - x0, 0), x1 - x0 - 1)
    cy = min(max(int(centre[1]) - y0, 0), y1 - y0 - 1)
    # The turn and purse moved the eye: put the patch where it is now, not where it was.
    moved = turn * fields.turn[:, cy, cx] + purse * fields.purse[:, cy, cx]
    margin = width * max(0.45, LID_SKIN + 0.1)
    ex0, ey0 = np.floor(points.min(axis=0) + moved - margin).astype(int)
    ex1, ey1 = np.ceil(points.max(axis=0) + moved + margin).astype(int)
    ex0, ey0 = max(int(ex0), x0), max(int(ey0), y0)
    ex1, ey1 = min(int(ex1), x1), min(int(ey1), y1)
    patch = out[ey0:ey1, ex0:ex1]
    qx = patch[..., 0].astype(np.float64)
    qy = patch[..., 1].astype(np.float64)
    _lid_backward(qx, qy, lower, upper, closed)
    patch[..., 0] = qx
    patch[..., 1] = qy


def identity_map(out: npt.NDArray[np.float32]) -> None:
    """Each pixel's own coordinates (x, y; pixel centres at integers) into ``out`` (h, w, 2)."""
    height, width = out.shape[:2]
    out[..., 0] = np.arange(width, dtype=np.float32)[None, :]
    out[..., 1] = np.arange(height, dtype=np.float32)[:, None]
