"""Where the retouch may act: the face's skin, never its eyes, brows or lips.

Drawn from the mesh in the retouch square: the face oval filled, the features (each a convex
hull, grown by a few pixels) cut out, the edges feathered so the retouch fades in. The weight
is the retouch strength where the mask is 1.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.headshot_parts.landmarks import FACE_OVAL, FEATURES

F32 = npt.NDArray[np.float32]


def feature_mask(points: F32, size: int, grow: int) -> npt.NDArray[np.uint8]:
    """255 on the eyes, brows and lips (hulls grown by ``grow`` pixels), 0 elsewhere."""
    mask: npt.NDArray[Any] = np.zeros((size, size), np.uint8)
    for group in FEATURES:
        hull = cv2.convexHull(np.round(points[list(group), :2]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_8)
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, kernel)
    return mask


def skin_weight(points: F32, size: int, strength: float) -> F32:
    """``size`` x ``size`` float weights for the retouch graph (points in square pixels)."""
    face_width = float(np.ptp(points[:, 0]))
    grow = max(2, round(0.03 * face_width))
    skin: npt.NDArray[Any] = np.zeros((size, size), np.float32)
    cv2.fillPoly(skin, [np.round(points[list(FACE_OVAL), :2]).astype(np.int32)], 1.0)
    skin[feature_mask(points, size, grow) > 0] = 0.0
    skin = cv2.erode(skin, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    feather = max(1.0, 0.015 * face_width)
    return (cv2.GaussianBlur(skin, (0, 0), feather) * strength).astype(np.float32)
