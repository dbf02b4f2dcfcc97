"""Encode pixels to JPEG or PNG into a secure buffer, with no metadata at all.

Why through a secure buffer: ``cv2.imencode`` returns its own array, which is copied into memory
the job owns and then wiped, so the only copy that outlives this call can be released with the
job. OpenCV's plain ``imencode`` writes no EXIF, XMP or text chunks (the tests check the output
for APP1/Exif and tEXt/iTXt/zTXt/eXIf); only JPEG and PNG are offered because other OpenCV
encoders (.hdr, .jp2) fall back to temporary files.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY, SecureBuffer, wipe_array

FORMATS = {"jpeg": ".jpg", "png": ".png"}


def encode_image(bgr: npt.NDArray[Any], fmt: str = "jpeg", owner: str = "",
                 quality: int = 92) -> tuple[SecureBuffer, memoryview]:
    """H x W x 3 uint8 BGR -> (secure buffer, memoryview of exactly the encoded bytes)."""
    if fmt not in FORMATS:
        raise ValueError(f"cannot encode {fmt!r}; formats: {', '.join(FORMATS)}")
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 BGR image, got {bgr.shape} {bgr.dtype}")
    if not 1 <= quality <= 100:
        raise ValueError("quality must be between 1 and 100")
    params = ([cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == "jpeg"
              else [cv2.IMWRITE_PNG_COMPRESSION, 3])
    encoded: npt.NDArray[Any] | None = None
    try:
        ok, encoded = cv2.imencode(FORMATS[fmt], bgr, params)
        if not ok or encoded is None or encoded.size == 0:
            raise RuntimeError(f"OpenCV could not encode a {bgr.shape[1]}x{bgr.shape[0]} {fmt}")
        buffer = REGISTRY.allocate(int(encoded.size), owner=owner, label=f"encoded-{fmt}")
        buffer.view()[:] = encoded.reshape(-1)
    finally:
        if encoded is not None:
            wipe_array(encoded)
    return buffer, buffer.memoryview()
