"""Read what an image claims to be (format, size, mode, EXIF orientation) before decoding it.

Why parse headers ourselves: a decoder allocates the full bitmap as soon as it starts, so a
50000 x 50000 PNG of a few kilobytes (a decompression bomb) has to be refused from its header;
a truncated upload has to be caught from its structure (a JPEG with no end-of-image marker still
decodes, into a partly grey picture); and EXIF orientation is applied by this project, not by
whatever the decoder version happens to do. Everything reads the upload in place through
``struct.unpack_from`` on a memoryview: no ``bytes`` copy of a guest's file is made.

Only JPEG, PNG and WebP are recognised; other formats are named so the error can say so.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

import numpy as np

from appliance.errors import UserFacingError

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
_OTHER_FORMATS = (
    (0, b"GIF8", "GIF"), (0, b"BM", "BMP"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"),
    (4, b"ftypheic", "HEIC"), (4, b"ftypheix", "HEIC"), (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"), (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"), (0, b"#?RADIANCE", "Radiance HDR"),
    (0, b"#?RGBE", "Radiance HDR"), (0, b"%PDF", "PDF"), (0, b"\x76\x2f\x31\x01", "OpenEXR"),
    (0, b"8BPS", "Photoshop"), (0, b"P1", "PNM"), (0, b"P2", "PNM"), (0, b"P3", "PNM"),
    (0, b"P4", "PNM"), (0, b"P5", "PNM"), (0, b"P6", "PNM"), (0, b"\xff\x0a", "JPEG XL"),
    (4, b"ftypjxl ", "JPEG XL"),
)
SUPPORTED = "JPEG, PNG or WebP"

_libc = ctypes.CDLL(None)
_libc.memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
_libc.memmem.restype = ctypes.c_void_p


@dataclass(frozen=True)
class ImageHeader:
    """What the file says about itself, read before any decoding."""

    format: str  # "jpeg" | "png" | "webp"
    width: int
    height: int
    channels: int  # colour components as stored (1 grey, 3 colour, 4 CMYK or with alpha)
    bit_depth: int
    has_alpha: bool
    orientation: int  # EXIF orientation 1..8 (1 = as stored)


def _not_an_image(detail: str) -> UserFacingError:
    return UserFacingError("not_an_image", f"This file is not a photo we can read ({detail}).",
                           status=415, remedy=f"Send a {SUPPORTED} photo.")


def truncated(fmt: str, detail: str) -> UserFacingError:
    return UserFacingError(
        "truncated_image", f"This {fmt.upper()} file is incomplete ({detail}); the upload was "
        "probably cut off.", status=400, remedy="Send the photo again.")


def unsupported_mode(detail: str) -> UserFacingError:
    return UserFacingError(
        "unsupported_mode", f"This kind of photo is not supported: {detail}.", status=415,
        remedy="Send an ordinary 8-bit colour JPEG, PNG or WebP photo (the camera's own file).")


def sniff_format(data: object) -> str:
    """"jpeg", "png" or "webp" from the first bytes; a clear error for anything else."""
    view = memoryview(data).cast("B")  # type: ignore[arg-type]
    if view.nbytes >= 3 and view[:3] == JPEG_MAGIC:
        return "jpeg"
    if view.nbytes >= 8 and view[:8] == PNG_MAGIC:
        return "png"
    if view.nbytes >= 12 and view[:4] == b"RIFF" and view[8:12] == b"WEBP":
        return "webp"
    for offset, magic, name in _OTHER_FORMATS:
        end = offset + len(magic)
        if view.nbytes >= end and view[offset:end] == magic:
            raise UserFacingError(
                "unsupported_format", f"{name} files are not supported.", status=415,
                remedy=f"Send a {SUPPORTED} photo (on a phone: share it as JPEG).")
    if view.nbytes == 0:
        raise _not_an_image("the file is empty")
    raise _not_an_image("it is not a JPEG, PNG or WebP image")


def _contains(view: memoryview, start: int, needle: bytes) -> bool:
    """Whether ``needle`` occurs in ``view[start:]``, searched in place (libc memmem)."""
    if start >= view.nbytes:
        return False
    array = np.frombuffer(view, dtype=np.uint8)  # a view, not a copy, even of read-only memory
    found = _libc.memmem(array.ctypes.data + start, view.nbytes - start, needle, len(needle))
    return found is not None


def _tiff_orientation(view: memoryview, start: int, end: int) -> int:
    """The Orientation tag (0x0112) of IFD0 in a TIFF/EXIF block; 1 when absent or invalid."""
    if end - start < 8 or end > view.nbytes:
        return 1
    order = view[start:start + 2]
    if order == b"II":
        endian = "<"
    elif order == b"MM":
        endian = ">"
    else:
        return 1
    ifd = start + struct.unpack_from(endian + "I", view, start + 4)[0]
    if ifd + 2 > end:
        return 1
    (count,) = struct.unpack_from(endian + "H", view, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > end:
            break
        tag, kind, number = struct.unpack_from(endian + "HHI", view, entry)
        if tag == 0x0112 and kind == 3 and number >= 1:
            (value,) = struct.unpack_from(endian + "H", view, entry + 8)
            return value if 1 <= value <= 8 else 1
    return 1


def _exif_orientation(view: memoryview, start: int, end: int) -> int:
    """Orientation from an EXIF payload with or without the ``Exif\\0\\0`` prefix."""
    if view[start:start + 6] == b"Exif\x00\x00":
        start += 6
    return _tiff_orientation(view, start, end)


def _jpeg(view: memoryview) -> ImageHeader:
    n = view.nbytes
    pos = 2
    sof: tuple[int, int, int, int, int] | None = None  # marker, precision, height, width, comps
    orientation = 1
    exif_seen = False
    scan_start = -1
    while pos + 4 <= n:
        if view[pos] != 0xFF:
            raise _not_an_image("the JPEG header is damaged")
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            raise _not_an_image("the JPEG ends before any picture data")
        (length,) = struct.unpack_from(">H", view, pos + 2)
        if length < 2:
            raise _not_an_image("the JPEG header is damaged")
        body, end = pos + 4, pos + 2 + length
        if end > n:
            raise truncated("jpeg", "it ends inside its header")
        if marker == 0xDA:
            scan_start = end
            break
        if marker in _SOF_MARKERS and sof is None:
            if length < 8:
                raise _not_an_image("the JPEG frame header is damaged")
            precision, height, width, comps = struct.unpack_from(">BHHB", view, body)
            sof = (marker, precision, height, width, comps)
        elif marker == 0xE1 and not exif_seen and view[body:body + 6] == b"Exif\x00\x00":
            exif_seen = True
            orientation = _exif_orientation(view, body, end)
        pos = end
    if scan_start < 0:
        if sof is None:
            raise truncated("jpeg", "it ends before the picture starts")
        raise truncated("jpeg", "it ends before the picture data")
    if sof is None:
        raise _not_an_image("the JPEG has no frame header")
    marker, precision, height, width, comps = sof
    if marker in _LOSSLESS_SOF:
        raise unsupported_mode("lossless JPEG")
    if precision != 8:
        raise unsupported_mode(f"{precision}-bit JPEG")
    if comps not in (1, 3, 4):
        raise unsupported_mode(f"a JPEG with {comps} colour components")
    if width == 0 or height == 0:
        raise unsupported_mode("a JPEG whose height is given only after the picture data")
    # The end-of-image marker cannot occur inside entropy-coded data (0xFF is byte-stuffed), so
    # its absence after the first scan means the file was cut off. Data after it (a phone's
    # "motion photo" video) is ignored by the decoder.
    ends_with_eoi = view[n - 2:n] == b"\xff\xd9"  # the usual case, checked in O(1)
    if not ends_with_eoi and not _contains(view, scan_start, b"\xff\xd9"):
        raise truncated("jpeg", "the end-of-image marker is missing")
    return ImageHeader("jpeg", width, height, comps, 8, False, orientation)


def _png(view: memoryview) -> ImageHeader:
    n = view.nbytes
    if n < 33 or view[12:16] != b"IHDR":
        raise truncated("png", "it ends inside its header") if n < 33 else _not_an_image(
            "the PNG header is damaged")
    width, height, depth, colour, _comp, _filter, _interlace = struct.unpack_from(
        ">IIBBBBB", view, 16)
    if width == 0 or height == 0 or colour not in _PNG_DEPTHS:
        raise _not_an_image("the PNG header is damaged")
    if depth not in _PNG_DEPTHS[colour]:
        raise _not_an_image(f"the PNG header gives an impossible bit depth ({depth})")
    orientation = 1
    transparent = colour in (4, 6)
    pos = 8
    ended = False
    while pos + 12 <= n:
        (length,) = struct.unpack_from(">I", view, pos)
        kind = view[pos + 4:pos + 8]
        body, end = pos + 8, pos + 12 + length
        if end > n:
            raise truncated("png", "a chunk runs past the end of the file")
        if kind == b"IEND":
            ended = True
            break
        if kind == b"eXIf":
            orientation = _exif_orientation(view, body, body + length)
        elif kind == b"tRNS":
            transparent = True
        elif kind == b"acTL":
            raise unsupported_mode("an animated PNG")
        pos = end
    if not ended:
        raise truncated("png", "the IEND chunk is missing")
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}[colour]
    return ImageHeader("png", width, height, channels, depth, transparent, orientation)


def _webp(view: memoryview) -> ImageHeader:
    n = view.nbytes
    (riff_size,) = struct.unpack_from("<I", view, 4)
    riff_end = 8 + riff_size
    if riff_size < 4 or riff_size % 2:
        raise _not_an_image("the WebP header is damaged")
    if riff_end > n:
        raise truncated("webp", f"{riff_end - n} bytes are missing")
    pos = 12
    first = True
    width = height = 0
    alpha = False
    orientation = 1
    while pos + 8 <= riff_end:
        kind = view[pos:pos + 4]
        (size,) = struct.unpack_from("<I", view, pos + 4)
        body, end = pos + 8, pos + 8 + size + (size & 1)
        if pos + 8 + size > riff_end:
            raise truncated("webp", "a chunk runs past the end of the file")
        if first:
            first = False
            if kind == b"VP8 ":
                if size < 10 or view[body + 3:body + 6] != b"\x9d\x01\x2a":
                    raise _not_an_image("the WebP picture header is damaged")
                w, h = struct.unpack_from("<HH", view, body + 6)
                width, height = w & 0x3FFF, h & 0x3FFF
            elif kind == b"VP8L":
                if size < 5 or view[body] != 0x2F:
                    raise _not_an_image("the WebP picture header is damaged")
                (bits,) = struct.unpack_from("<I", view, body + 1)
                width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
                alpha = bool((bits >> 28) & 1)
            elif kind == b"VP8X":
                if size < 10:
                    raise _not_an_image("the WebP header is damaged")
                flags = view[body]
                if flags & 0x02:
                    raise unsupported_mode("an animated WebP")
                alpha = bool(flags & 0x10)
                w0, w1, w2, h0, h1, h2 = struct.unpack_from("<6B", view, body + 4)
                width = 1 + (w0 | w1 << 8 | w2 << 16)
                height = 1 + (h0 | h1 << 8 | h2 << 16)
            else:
                raise _not_an_image("the WebP header is damaged")
        elif kind == b"EXIF":
            orientation = _exif_orientation(view, body, body + size)
        elif kind == b"ANMF":
            raise unsupported_mode("an animated WebP")
        pos = end
    if width == 0 or height == 0:
        raise _not_an_image("the WebP header gives no picture size")
    return ImageHeader("webp", width, height, 4 if alpha else 3, 8, alpha, orientation)


def read_header(data: object) -> ImageHeader:
    """Format, size, mode and orientation of an upload, without decoding any pixels."""
    view = memoryview(data).cast("B")  # type: ignore[arg-type]
    fmt = sniff_format(view)
    try:
        if fmt == "jpeg":
            return _jpeg(view)
        if fmt == "png":
            return _png(view)
        return _webp(view)
    except struct.error:
        raise truncated(fmt, "it ends inside its header") from None
