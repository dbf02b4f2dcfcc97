"""Find metadata in an output file before it leaves the effect: JPEG, PNG and MP4.

Why a check and not only careful encoders: a guest's picture must say nothing about when,
where or on what it was made. The encoders the effects use write none today, but a library
upgrade, a new muxer default ("encoder" tags, creation times) or a new effect could start to;
``EffectRun.emit`` runs this on every output, so such an output fails loudly in the tests
instead of reaching a guest.

What counts as metadata: JPEG APP1..APP15 segments (EXIF, XMP, ICC, Photoshop, ...), comments,
a JFIF thumbnail; PNG text, EXIF, time and ICC chunks; MP4 user data, meta and uuid boxes and
any non-zero creation or modification time in the movie, track and media headers.
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_METADATA = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME", b"iCCP"}
MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"edts", b"dinf", b"mvex"}
MP4_METADATA = {b"udta", b"meta", b"uuid", b"XMP_"}
MP4_TIMED_HEADERS = {b"mvhd", b"tkhd", b"mdhd"}


def jpeg_metadata(data: memoryview) -> list[str]:
    found: list[str] = []
    if bytes(data[:2]) != b"\xff\xd8":
        return ["not a JPEG"]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return [*found, "a broken marker"]
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more headers
            return found
        length = struct.unpack(">H", bytes(data[pos + 2:pos + 4]))[0]
        body = bytes(data[pos + 4:pos + 2 + length])
        if marker == 0xE0:
            if body[:5] == b"JFIF\0" and len(body) >= 14 and (body[12] or body[13]):
                found.append("JFIF thumbnail")
            elif body[:5] != b"JFIF\0":
                found.append("APP0 " + body[:4].decode("latin-1"))
        elif 0xE1 <= marker <= 0xEF:
            tag = body.split(b"\0", 1)[0][:16].decode("latin-1", "replace")
            found.append(f"APP{marker - 0xE0} {tag}".strip())
        elif marker == 0xFE:
            found.append("comment")
        pos += 2 + length
    return found


def png_metadata(data: memoryview) -> list[str]:
    if bytes(data[:8]) != PNG_SIGNATURE:
        return ["not a PNG"]
    found = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", bytes(data[pos:pos + 8]))
        if kind in PNG_METADATA:
            found.append(kind.decode("latin-1") + " chunk")
        if kind == b"IEND":
            break
        pos += 12 + length
    return found


def _mp4_boxes(data: memoryview, start: int, end: int) -> list[tuple[bytes, int, int]]:
    boxes = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", bytes(data[pos:pos + 8]))
        header = 8
        if size == 1 and pos + 16 <= end:
            size = struct.unpack(">Q", bytes(data[pos + 8:pos + 16]))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        boxes.append((kind, pos + header, pos + size))
        pos += size
    return boxes


def _header_times(data: memoryview, start: int) -> tuple[int, int]:
    version = data[start]
    if version == 1:
        return struct.unpack(">QQ", bytes(data[start + 4:start + 20]))
    return struct.unpack(">II", bytes(data[start + 4:start + 12]))


def mp4_metadata(data: memoryview) -> list[str]:
    found: list[str] = []
    if bytes(data[4:8]) != b"ftyp":
        return ["not an MP4"]

    def walk(start: int, end: int, path: str) -> None:
        for kind, body, stop in _mp4_boxes(data, start, end):
            name = kind.decode("latin-1", "replace")
            if kind in MP4_METADATA:
                found.append(f"{path}{name} box")
            elif kind in MP4_TIMED_HEADERS and any(_header_times(data, body)):
                found.append(f"{path}{name} creation/modification time")
            elif kind in MP4_CONTAINERS:
                walk(body, stop, f"{path}{name}/")

    walk(0, len(data), "")
    return found


def metadata_found(data: memoryview, media_type: str) -> list[str]:
    """Names of the metadata in an encoded file (empty when it has none)."""
    readers = {"image/jpeg": jpeg_metadata, "image/png": png_metadata, "video/mp4": mp4_metadata}
    reader = readers.get(media_type)
    if reader is None:
        return [f"no metadata check for {media_type}"]
    return reader(data)
