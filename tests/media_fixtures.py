"""Images made by the tests themselves (Pillow writes the EXIF, OpenCV the rest)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

GPS_IFD = 0x8825
MODEL = "EphemeraTestCam 9000"


def photo(height: int = 48, width: int = 64, seed: int = 1) -> np.ndarray:
    """An RGB picture with no symmetry (so every rotation and flip is distinguishable)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    (x + 2 * y) % 256], axis=-1).astype(np.uint8)
    rgb[: height // 4, : width // 3] = (250, 20, 20)  # a red block in the top-left corner
    rgb += rng.integers(0, 4, rgb.shape, dtype=np.uint8)
    return rgb


def exif(orientation: int = 1, gps: bool = True) -> Image.Exif:
    data = Image.Exif()
    data[0x0112] = orientation
    data[0x0110] = MODEL  # camera model
    data[0x010F] = "EphemeraMaker"
    if gps:
        data[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    return data


def pil_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def jpeg(rgb: np.ndarray | None = None, orientation: int = 1, quality: int = 95,
         **options: Any) -> bytes:
    rgb = photo() if rgb is None else rgb
    return pil_bytes(Image.fromarray(rgb), "JPEG", quality=quality,
                     exif=exif(orientation), **options)


def png(array: np.ndarray, mode: str | None = None, orientation: int | None = None) -> bytes:
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    options: dict[str, Any] = {}
    if orientation is not None:
        options["exif"] = exif(orientation)
    return pil_bytes(image, "PNG", **options)


def webp(array: np.ndarray, orientation: int | None = None, lossless: bool = True) -> bytes:
    options: dict[str, Any] = {"lossless": lossless}
    if orientation is not None:
        options["exif"] = exif(orientation)
    return pil_bytes(Image.fromarray(array), "WEBP", **options)


def cv2_png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def pillow_upright_rgb(data: bytes) -> np.ndarray:
    """The independent oracle: what Pillow shows after applying the EXIF orientation."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(image.convert("RGB"))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height RGB pixels."""
    row = b"\x00" + bytes(width * 3)
    compressor = zlib.compressobj(9)
    body = compressor.compress(row * 4) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b""))


def jpeg_with_sof(data: bytes, *, precision: int | None = None,
                  size: tuple[int, int] | None = None) -> bytes:
    """Patch the frame header (SOF0) of a baseline JPEG."""
    out = bytearray(data)
    index = out.find(b"\xff\xc0")
    assert index > 0
    if precision is not None:
        out[index + 4] = precision
    if size is not None:
        out[index + 5: index + 9] = struct.pack(">HH", size[1], size[0])
    return bytes(out)


def jpeg_markers(data: bytes) -> list[int]:
    """The markers before the first scan, in order (SOS included)."""
    markers = []
    pos = 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack(">H", data[pos + 2: pos + 4])[0]
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos: pos + 4])[0]
        chunks.append(data[pos + 4: pos + 8])
        pos += 12 + length
    return chunks
