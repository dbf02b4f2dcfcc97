"""The metadata check every output passes: finds what PIL, OpenCV and a muxer can write, and
nothing in what the booth's encoders write."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, PngImagePlugin

from appliance.media.metadata import metadata_found
from tests.helpers.images import astronaut_bgr, encode


def found(data: bytes, media_type: str) -> list[str]:
    return metadata_found(memoryview(data), media_type)


def pil_bytes(fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(astronaut_bgr()[:64, :64, ::-1])).save(out, fmt, **save)
    return out.getvalue()


def test_opencv_outputs_are_clean() -> None:
    assert found(encode(astronaut_bgr(), ".jpg"), "image/jpeg") == []
    assert found(encode(astronaut_bgr(), ".png"), "image/png") == []


def test_jpeg_exif_comment_icc_and_thumbnail_are_found() -> None:
    exif = Image.Exif()
    exif[0x0132] = "2026:01:01 10:00:00"  # DateTime
    assert any("Exif" in f for f in found(pil_bytes("JPEG", exif=exif.tobytes()),
                                           "image/jpeg"))
    assert "comment" in found(pil_bytes("JPEG", comment=b"made at the party"), "image/jpeg")
    assert any("ICC_PROFILE" in f for f in found(pil_bytes("JPEG", icc_profile=b"\0" * 200),
                                                 "image/jpeg"))
    plain = pil_bytes("JPEG")
    assert found(plain, "image/jpeg") == []
    # A JFIF header announcing a 1 x 1 thumbnail.
    at = plain.index(b"JFIF\0")
    thumbnail = plain[:at + 12] + b"\x01\x01" + plain[at + 14:]
    assert found(thumbnail, "image/jpeg") == ["JFIF thumbnail"]


def test_png_text_time_and_icc_chunks_are_found() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone")
    info.add_itxt("Comment", "hello")
    assert {"tEXt chunk", "iTXt chunk"} <= set(found(pil_bytes("PNG", pnginfo=info),
                                                     "image/png"))
    assert "iCCP chunk" in found(pil_bytes("PNG", icc_profile=b"\0" * 200), "image/png")
    assert found(pil_bytes("PNG"), "image/png") == []


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def mp4(created: int = 0, udta: bool = False, version: int = 0) -> bytes:
    times = (struct.pack(">QQ", created, created) if version
             else struct.pack(">II", created, created))
    mvhd = box(b"mvhd", bytes([version, 0, 0, 0]) + times + bytes(80))
    track = box(b"trak", box(b"tkhd", bytes(4) + bytes(8) + bytes(72)))
    extra = box(b"udta", box(b"\xa9too", b"Lavf60")) if udta else b""
    return box(b"ftyp", b"isom\0\0\0\0isom") + box(b"moov", mvhd + track + extra) + box(
        b"mdat", bytes(16))


def test_mp4_user_data_and_creation_times_are_found() -> None:
    assert found(mp4(), "video/mp4") == []
    assert found(mp4(udta=True), "video/mp4") == ["moov/udta box"]
    assert found(mp4(created=3_800_000_000), "video/mp4") == [
        "moov/mvhd creation/modification time"]
    assert found(mp4(created=3_800_000_000, version=1), "video/mp4") == [
        "moov/mvhd creation/modification time"]


def test_an_unknown_type_or_a_wrong_file_is_not_waved_through() -> None:
    assert found(b"GIF89a", "image/gif") == ["no metadata check for image/gif"]
    assert found(b"\x89PNG", "image/jpeg") == ["not a JPEG"]
