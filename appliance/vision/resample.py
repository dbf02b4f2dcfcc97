"""Shrinking big photos fast, into buffers we own.

Why: OpenCV's INTER_AREA (the right filter for shrinking: every source pixel counts, no
aliasing) has a fast path only for exact integer factors; a 4000 x 3000 photo shrunk to
1280 x 960 takes it off that path and costs about twice as long. So shrink by the largest whole
factor first (dropping at most factor - 1 edge pixels, under 0.1% of a 12-megapixel photo),
then by the small remainder.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY


def shrink_into(src: npt.NDArray[Any], dst: npt.NDArray[Any], owner: str) -> None:
    """INTER_AREA resize of ``src`` into ``dst`` (same channels, not larger than ``src``)."""
    sh, sw = src.shape[:2]
    dh, dw = dst.shape[:2]
    factor = min(sw // dw, sh // dh)
    if factor < 2:
        cv2.resize(src, (dw, dh), dst=dst, interpolation=cv2.INTER_AREA)
        return
    ch, cw = sh // factor, sw // factor
    buffer, middle = REGISTRY.array((ch, cw, *src.shape[2:]), src.dtype, owner=owner,
                                    label="shrink")
    try:
        cv2.resize(src[:ch * factor, :cw * factor], (cw, ch), dst=middle,
                   interpolation=cv2.INTER_AREA)
        cv2.resize(middle, (dw, dh), dst=dst, interpolation=cv2.INTER_AREA)
    finally:
        buffer.release()


__all__ = ["shrink_into"]
