"""Encoding results: bytes in a secure buffer, the library's array wiped, no metadata at all."""

from __future__ import annotations

import uuid

import cv2
import numpy as np
import pytest

from appliance.media import encode as encode_module
from appliance.media.decode import decode_image
from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY
from tests import media_fixtures as fx

METADATA_PNG_CHUNKS = {b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME", b"iCCP"}


def owner() -> str:
    return f"job-{uuid.uuid4().hex}"


def test_a_photo_with_gps_camera_and_orientation_comes_out_with_none_of_it() -> None:
    source = fx.jpeg(orientation=6)
    assert b"Exif" in source and fx.MODEL.encode() in source
    who = owner()
    _, bgr = decode_image(memoryview(bytearray(source)), who)
    for fmt in ("jpeg", "png"):
        buffer, view = encode_image(bgr, fmt, who)
        out = bytes(view)
        assert buffer.owner == who and len(out) == buffer.nbytes
        assert b"Exif" not in out and fx.MODEL.encode() not in out
        assert b"EphemeraMaker" not in out
        if fmt == "jpeg":
            markers = fx.jpeg_markers(out)
            assert markers[-1] == 0xDA
            assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE]  # APP1-15, COM
        else:
            chunks = set(fx.png_chunks(out))
            assert not chunks & METADATA_PNG_CHUNKS
            assert chunks == {b"IHDR", b"IDAT", b"IEND"}
        again = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR)
        assert again.shape == bgr.shape  # upright: orientation was applied, not carried
    REGISTRY.release_owner(who)


def test_png_is_lossless_and_jpeg_quality_is_honoured() -> None:
    who = owner()
    bgr = np.ascontiguousarray(fx.photo()[..., ::-1])
    _, png_view = encode_image(bgr, "png", who)
    decoded = cv2.imdecode(np.frombuffer(png_view, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decoded, bgr)
    small = encode_image(bgr, "jpeg", who, quality=10)[0].nbytes
    large = encode_image(bgr, "jpeg", who, quality=95)[0].nbytes
    assert small < large
    REGISTRY.release_owner(who)


def test_the_encoders_own_array_is_wiped(monkeypatch: pytest.MonkeyPatch) -> None:
    returned: list[np.ndarray] = []
    real = cv2.imencode

    def spy(*args: object) -> tuple[bool, np.ndarray]:
        ok, data = real(*args)
        returned.append(data)
        return ok, data

    monkeypatch.setattr(encode_module.cv2, "imencode", spy)
    who = owner()
    _, view = encode_image(np.ascontiguousarray(fx.photo()[..., ::-1]), "jpeg", who)
    assert bytes(view[:3]) == b"\xff\xd8\xff"
    assert len(returned) == 1 and not returned[0].any()
    REGISTRY.release_owner(who)


def test_bad_arguments() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="cannot encode 'hdr'"):
        encode_image(image, "hdr", "x")
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        encode_image(np.zeros((4, 4), np.uint8), "png", "x")
    with pytest.raises(ValueError, match="quality"):
        encode_image(image, "jpeg", "x", quality=0)
