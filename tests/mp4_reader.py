"""An MP4 reader for the tests, independent of the writer (appliance.media.mp4).

It walks the boxes from the ISO/IEC 14496-12 layout itself and reads the sample tables, so the
tests can check the box order and that every chunk offset lands on a real H.264 sample.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"}


@dataclass
class Box:
    kind: str
    start: int
    size: int
    body: int
    children: list[Box] = field(default_factory=list)


def walk(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    end = len(data) if end is None else end
    boxes, pos = [], start
    while pos < end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        assert size >= header and pos + size <= end, f"bad box {kind!r} at {pos}"
        box = Box(kind.decode("latin-1"), pos, size, pos + header)
        if kind in CONTAINERS:
            box.children = walk(data, pos + header, pos + size)
        boxes.append(box)
        pos += size
    return boxes


def find(boxes: list[Box], path: str) -> list[Box]:
    head, _, rest = path.partition("/")
    found = [b for b in boxes if b.kind == head]
    if not rest:
        return found
    return [hit for b in found for hit in find(b.children, rest)]


def chunk_offsets(data: bytes, stbl: Box) -> list[int]:
    for box in stbl.children:
        if box.kind in ("stco", "co64"):
            count = struct.unpack(">I", data[box.body + 4:box.body + 8])[0]
            fmt = ">I" if box.kind == "stco" else ">Q"
            width = struct.calcsize(fmt)
            return [struct.unpack(fmt, data[box.body + 8 + i * width:
                                            box.body + 8 + (i + 1) * width])[0]
                    for i in range(count)]
    raise AssertionError("no chunk offset table")


def sample_sizes(data: bytes, stbl: Box) -> list[int]:
    (stsz,) = [b for b in stbl.children if b.kind == "stsz"]
    uniform, count = struct.unpack(">II", data[stsz.body + 4:stsz.body + 12])
    if uniform:
        return [uniform] * count
    return list(struct.unpack(f">{count}I", data[stsz.body + 12:stsz.body + 12 + 4 * count]))


def samples_per_chunk(data: bytes, stbl: Box, chunks: int) -> list[int]:
    (stsc,) = [b for b in stbl.children if b.kind == "stsc"]
    count = struct.unpack(">I", data[stsc.body + 4:stsc.body + 8])[0]
    runs = [struct.unpack(">III", data[stsc.body + 8 + 12 * i:stsc.body + 20 + 12 * i])
            for i in range(count)]
    out = []
    for index, (first, per, _desc) in enumerate(runs):
        last = runs[index + 1][0] - 1 if index + 1 < len(runs) else chunks
        out += [per] * (last - first + 1)
    return out


def samples(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every sample of the first track, from stco/co64, stsc and stsz."""
    (stbl,) = find(walk(data), "moov/trak/mdia/minf/stbl")
    offsets = chunk_offsets(data, stbl)
    sizes = sample_sizes(data, stbl)
    result, index = [], 0
    for offset, per in zip(offsets, samples_per_chunk(data, stbl, len(offsets)), strict=True):
        for _ in range(per):
            result.append((offset, sizes[index]))
            offset += sizes[index]
            index += 1
    assert index == len(sizes)
    return result


def nal_units(data: bytes, offset: int, size: int) -> list[int]:
    """NAL unit types of one length-prefixed (AVCC) sample; fails on a malformed sample."""
    types, pos, end = [], offset, offset + size
    while pos < end:
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        assert 0 < length <= end - pos - 4, f"bad NAL length {length} at {pos}"
        header = data[pos + 4]
        assert header & 0x80 == 0, "forbidden bit set"
        types.append(header & 0x1F)
        pos += 4 + length
    return types
