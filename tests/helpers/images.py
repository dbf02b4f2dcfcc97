"""Test photos made here: scikit-image's astronaut and camera (real faces), a random canary
patch, and the bad files of the README's error table. Nothing is downloaded; nothing is a
guest's photo."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import numpy.typing as npt
from skimage import data as skdata

from tests.helpers.memscan import Canary

PATCH_AT = (440, 8)  # (row, column) in the 512 x 512 astronaut: on the suit, away from the face


def sample_bgr(name: str) -> npt.NDArray[np.uint8]:
    """A scikit-image sample photo ("astronaut", "camera", "coffee", ...) as BGR uint8; grey
    photos get three equal channels."""
    pixels = getattr(skdata, name)()
    if pixels.ndim == 2:
        return np.ascontiguousarray(np.stack([pixels] * 3, axis=-1))
    return np.ascontiguousarray(pixels[:, :, ::-1])


def astronaut_bgr() -> npt.NDArray[np.uint8]:
    return sample_bgr("astronaut")


def camera_bgr() -> npt.NDArray[np.uint8]:
    """scikit-image's camera photo: a three-quarter face."""
    return sample_bgr("camera")


def with_canary(canary: Canary) -> npt.NDArray[np.uint8]:
    """The astronaut with the canary's random patch pasted on (BGR)."""
    image = astronaut_bgr().copy()
    size = canary.patch_rgb.shape[0]
    row, col = PATCH_AT
    image[row:row + size, col:col + size] = canary.patch_rgb[:, :, ::-1]
    return image


def encode(bgr: npt.NDArray[np.uint8], ext: str = ".png", *params: int) -> bytes:
    ok, buffer = cv2.imencode(ext, bgr, list(params))
    assert ok
    return buffer.tobytes()


def png_chunk_span(png: bytes, kind: bytes = b"IDAT") -> tuple[int, int]:
    """Start and end of the data of the first chunk of ``kind`` (the compressed pixels)."""
    offset = 8
    while offset < len(png):
        length, name = struct.unpack(">I4s", png[offset:offset + 8])
        if name == kind:
            return offset + 8, offset + 8 + length
        offset += 12 + length
    raise AssertionError(f"no {kind!r} chunk")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def animated_png(png: bytes) -> bytes:
    """A PNG with an acTL chunk (an APNG): an unsupported mode."""
    end_of_ihdr = 8 + 12 + 13
    return png[:end_of_ihdr] + _chunk(b"acTL", struct.pack(">II", 1, 0)) + png[end_of_ihdr:]


def bomb_png(side: int) -> bytes:
    """A valid PNG of side x side black pixels: a few hundred KiB that would decode to GiBs."""
    squeeze = zlib.compressobj(9)
    row = b"\0" * (side * 3 + 1)
    rows = b"".join([squeeze.compress(row) for _ in range(side)] + [squeeze.flush()])
    width = height = side
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(
        b"IEND", b"")


def twelve_megapixels() -> npt.NDArray[np.uint8]:
    """4000 x 3000: the astronaut scaled up (a real face, large), as a phone camera shoots."""
    face = cv2.resize(astronaut_bgr(), (3000, 3000), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    canvas[:, 500:3500] = face
    return canvas


def two_faces() -> npt.NDArray[np.uint8]:
    face = astronaut_bgr()
    return np.ascontiguousarray(np.concatenate([face, face], axis=1))


def no_face(canary: Canary) -> npt.NDArray[np.uint8]:
    """Coffee cup, no person, with the canary pasted in."""
    image = np.ascontiguousarray(skdata.coffee()[:, :, ::-1]).copy()
    size = canary.patch_rgb.shape[0]
    image[8:8 + size, 8:8 + size] = canary.patch_rgb[:, :, ::-1]
    return image

