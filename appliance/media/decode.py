"""Decode an upload into 8-bit BGR pixels in a secure buffer, upright, with no metadata.

The order matters (P1, P3, P4 and "Bad input" in docs/PRIVACY.md):

1. size limit on the bytes, then the format from the magic bytes (JPEG, PNG, WebP only: OpenCV's
   other codecs include some that fall back to temporary files);
2. the header (appliance.media.headers): dimensions, bit depth, orientation and structure, so
   decompression bombs, oversized and truncated files are refused before any pixel is decoded;
3. ``cv2.imdecode`` with orientation handling off, then everything is normalised into a secure
   buffer owned by the job: 16-bit to 8-bit, grey to BGR, CMYK to BGR (by libjpeg), alpha
   composited on white, then the EXIF orientation applied by us (so all eight cases are ours
   and tested);
4. every array the library returned is wiped. Only pixels are kept, so every piece of metadata
   (EXIF with GPS and camera, XMP, ICC, text chunks) is gone by construction.

Alpha: a transparent PNG or WebP (a cut-out portrait) is composited on white, the neutral
studio background, rather than refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.errors import UserFacingError
from appliance.media.budget import BUDGET, DecodedBytesBudget
from appliance.media.headers import (
    SUPPORTED,
    ImageHeader,
    read_header,
    sniff_format,
    truncated,
    unsupported_mode,
)
from appliance.secure.buffers import REGISTRY, SecureBuffer, wipe_array

# Decoded bytes per file byte above which an oversized image is called a decompression bomb
# rather than merely too large. Real photos compress 5-50:1; flat screenshots a few hundred.
BOMB_RATIO = 250
# Within the limits, a file that would expand more than this many times, into more than
# BOMB_FLOOR_BYTES, is refused too: no camera photo does (a flat grey 12-megapixel JPEG, the
# most compressible photo there is, expands about 190 times), while a crafted 70 KB JPEG or
# 120 KB PNG that claims 40 megapixels costs 120 MB and a second of decoding each.
MAX_PLAUSIBLE_RATIO = 400
BOMB_FLOOR_BYTES = 16 << 20
_COMPOSITE_ROWS = 256  # rows per step when compositing alpha (bounded scratch memory)


@dataclass(frozen=True)
class ImageLimits:
    """What one upload may be. Checked from the header, before decoding."""

    max_bytes: int = 25 << 20
    max_pixels: int = 40_000_000
    max_side: int = 10_000


def _check_limits(header: ImageHeader, nbytes: int, limits: ImageLimits) -> None:
    pixels = header.width * header.height
    size = f"{header.width} x {header.height}"
    expanded = pixels * 3
    if expanded > BOMB_FLOOR_BYTES and expanded > MAX_PLAUSIBLE_RATIO * max(nbytes, 1):
        raise UserFacingError(
            "decompression_bomb", f"This file claims to be {size} pixels but is only {nbytes} "
            "bytes: no photo compresses that far.", status=413,
            remedy="Send an ordinary photo from a camera or phone.")
    if pixels <= limits.max_pixels and max(header.width, header.height) <= limits.max_side:
        return
    if pixels * 3 > BOMB_RATIO * max(nbytes, 1):
        raise UserFacingError(
            "decompression_bomb", f"This file claims to be {size} pixels but is only {nbytes} "
            "bytes: it would expand to far more memory than a photo needs.", status=413,
            remedy="Send an ordinary photo from a camera or phone.")
    raise UserFacingError(
        "too_many_pixels", f"This photo is {size} pixels; the booth takes at most "
        f"{limits.max_pixels // 1_000_000} megapixels and {limits.max_side} pixels a side.",
        status=413, remedy="Send a smaller photo (phones can share a reduced size).")


def _decode_flags(header: ImageHeader) -> int:
    if header.format == "jpeg":
        # libjpeg converts grey and CMYK (Adobe's inverted form too) to BGR for IMREAD_COLOR.
        return int(cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    # Keep alpha and 16-bit so they are handled explicitly; UNCHANGED never applies orientation.
    return int(cv2.IMREAD_UNCHANGED)


def _to_8bit(source: npt.NDArray[Any], owner: str) -> tuple[SecureBuffer, npt.NDArray[Any]]:
    buffer, out = REGISTRY.array(source.shape, np.uint8, owner=owner, label="decode-8bit")
    # round(v / 257) maps 0..65535 onto 0..255 (257 = 65535 / 255).
    cv2.convertScaleAbs(source, dst=out, alpha=1.0 / 257.0)
    return buffer, out


def _composite_on_white(bgra: npt.NDArray[Any], out: npt.NDArray[Any], owner: str) -> None:
    """out = bgr * a + 255 * (1 - a), in integer arithmetic, a band of rows at a time."""
    rows = min(_COMPOSITE_ROWS, bgra.shape[0])
    width = bgra.shape[1]
    acc_buf, acc = REGISTRY.array((rows, width, 3), np.uint16, owner=owner, label="alpha-acc")
    inv_buf, inv = REGISTRY.array((rows, width, 1), np.uint16, owner=owner, label="alpha-inv")
    try:
        for top in range(0, bgra.shape[0], rows):
            band = bgra[top:top + rows]
            n = band.shape[0]
            a, s = acc[:n], inv[:n]
            np.multiply(band[..., :3], band[..., 3:4], out=a, dtype=np.uint16)
            np.subtract(255, band[..., 3:4], out=s, dtype=np.uint16)
            np.multiply(s, 255, out=s)
            np.add(a, s, out=a)
            np.add(a, 127, out=a)
            np.floor_divide(a, 255, out=a)
            np.copyto(out[top:top + n], a, casting="unsafe")
    finally:
        acc_buf.release()
        inv_buf.release()


def _normalise(raw: npt.NDArray[Any], out: npt.NDArray[Any], owner: str) -> None:
    """Any decoder output (8/16-bit; 1, 3 or 4 channels) into 8-bit BGR ``out``."""
    scratch: SecureBuffer | None = None
    try:
        if raw.dtype == np.uint16:
            scratch, raw = _to_8bit(raw, owner)
        elif raw.dtype != np.uint8:
            raise unsupported_mode(f"pixels of type {raw.dtype}")
        channels = 1 if raw.ndim == 2 else raw.shape[2]
        if channels == 1:
            cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR, dst=out)
        elif channels == 3:
            np.copyto(out, raw)
        elif channels == 4:
            _composite_on_white(raw, out, owner)
        else:
            raise unsupported_mode(f"{channels} colour channels")
    finally:
        if scratch is not None:
            scratch.release()


def _orient(upright_shape: tuple[int, int], stored: npt.NDArray[Any], orientation: int,
            owner: str) -> tuple[SecureBuffer, npt.NDArray[Any]]:
    """Apply EXIF orientation (1..8) from the stored pixels into a new secure buffer."""
    buffer, out = REGISTRY.array((*upright_shape, 3), np.uint8, owner=owner, label="decoded")
    try:
        _apply_orientation(stored, orientation, out)
    except BaseException:
        buffer.release()
        raise
    return buffer, out


def _apply_orientation(stored: npt.NDArray[Any], orientation: int,
                       out: npt.NDArray[Any]) -> None:
    if orientation == 2:  # mirrored left-right
        cv2.flip(stored, 1, dst=out)
    elif orientation == 3:  # upside down
        cv2.rotate(stored, cv2.ROTATE_180, dst=out)
    elif orientation == 4:  # mirrored top-bottom
        cv2.flip(stored, 0, dst=out)
    elif orientation == 5:  # transpose
        cv2.transpose(stored, dst=out)
    elif orientation == 6:  # camera held rotated: turn 90 degrees clockwise
        cv2.rotate(stored, cv2.ROTATE_90_CLOCKWISE, dst=out)
    elif orientation == 7:  # transverse: transpose, then turn 180 degrees
        cv2.flip(stored, -1, dst=stored)
        cv2.transpose(stored, dst=out)
    elif orientation == 8:  # turn 90 degrees counter-clockwise
        cv2.rotate(stored, cv2.ROTATE_90_COUNTERCLOCKWISE, dst=out)
    else:
        np.copyto(out, stored)


def decode_image(data: Any, owner: str, limits: ImageLimits | None = None,
                 budget: DecodedBytesBudget | None = None
                 ) -> tuple[SecureBuffer, npt.NDArray[Any]]:
    """Upload bytes (a secure-buffer memoryview) -> (buffer, H x W x 3 uint8 BGR view).

    Raises UserFacingError with one of: not_an_image, unsupported_format, truncated_image,
    too_many_bytes, too_many_pixels, decompression_bomb, unsupported_mode, busy (429: the
    decoded-bytes budget stayed full). On any error every secure buffer this call allocated
    has been released and the decoder's output wiped. On success the decoded photo's bytes
    stay reserved for ``owner`` in the budget until ``budget.release(owner)``.
    """
    limits = limits or ImageLimits()
    view = memoryview(data).cast("B")
    if view.nbytes > limits.max_bytes:
        raise UserFacingError(
            "too_many_bytes", f"This file is {view.nbytes / (1 << 20):.1f} MiB; the booth takes "
            f"at most {limits.max_bytes / (1 << 20):.0f} MiB.", status=413,
            remedy="Send a smaller photo (phones can share a reduced size).")
    sniff_format(view)
    header = read_header(view)
    _check_limits(header, view.nbytes, limits)
    cost = decode_cost(header)
    budget = budget or BUDGET
    budget.acquire(owner, cost)  # waits briefly for room, or 429: nothing decoded yet
    kept = 0
    try:
        result = _decode(view, header, owner)
        kept = result[0].nbytes  # the decoded photo: reserved until its buffer is released
        result[0].on_release = partial(budget.give_back, owner, kept)
        return result
    finally:
        budget.give_back(owner, cost - kept)


def decode_cost(header: ImageHeader) -> int:
    """The most bytes decoding this image holds at once: the decoder's own array (alpha and
    16-bit kept), the 8-bit scratch for 16-bit input, our copy, and a rotated copy."""
    pixels = header.width * header.height
    channels = 4 if header.has_alpha else (1 if header.channels == 1 else 3)
    if header.format == "jpeg":
        channels = 3
    sample = 2 if header.bit_depth == 16 else 1
    cost = pixels * channels * sample + pixels * 3
    if sample == 2:
        cost += pixels * channels
    if header.orientation != 1:
        cost += pixels * 3
    return cost


def _decode(view: memoryview, header: ImageHeader, owner: str
            ) -> tuple[SecureBuffer, npt.NDArray[Any]]:
    raw: npt.NDArray[Any] | None = None
    try:
        try:
            raw = cv2.imdecode(np.frombuffer(view, dtype=np.uint8), _decode_flags(header))
        except cv2.error:
            raw = None
        if raw is None:
            raise UserFacingError(
                "not_an_image", f"This {header.format.upper()} file is damaged and cannot be "
                "decoded.", status=415, remedy=f"Send the photo again, as {SUPPORTED}.")
        if raw.shape[:2] != (header.height, header.width):
            raise truncated(header.format, "the picture data does not match its header")
        stored_buf, stored = REGISTRY.array((header.height, header.width, 3), np.uint8,
                                            owner=owner, label="decode-stored")
        try:
            _normalise(raw, stored, owner)
            wipe_array(raw)
            raw = None
            if header.orientation == 1:
                stored_buf.label = "decoded"
                return stored_buf, stored
            upright = ((header.width, header.height) if header.orientation >= 5
                       else (header.height, header.width))
            result = _orient(upright, stored, header.orientation, owner)
            stored_buf.release()
            return result
        except BaseException:
            stored_buf.release()
            raise
    finally:
        if raw is not None:
            wipe_array(raw)


__all__ = ["BOMB_RATIO", "MAX_PLAUSIBLE_RATIO", "ImageLimits", "decode_cost", "decode_image",
           "read_header", "sniff_format"]
