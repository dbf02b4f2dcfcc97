"""Move an MP4's ``moov`` box in front of ``mdat`` ("faststart"), entirely in memory.

Why by hand: FFmpeg's ``movflags=+faststart`` re-opens the output to shift it, which a memory
buffer cannot do, and the alternative (a temporary file) is what the appliance never does.
Phones (iPhone Safari above all) want the index first so they can start playing before the whole
file has arrived. Moving ``moov`` forward by its own size shifts every media byte in ``mdat`` by
that size, so every chunk offset (``stco`` 32-bit, ``co64`` 64-bit) in every track is increased
by it. The result is written into a secure buffer of the job; the input is not modified.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY, SecureBuffer

# Boxes whose payload is nothing but child boxes, on the path from moov to the chunk tables.
CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"})
DROPPED = frozenset({b"udta"})


class Mp4Error(ValueError):
    """The bytes are not an MP4 this module can rearrange."""


def iter_boxes(data: memoryview, start: int = 0,
               end: int | None = None) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, header size, box size) for each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise Mp4Error(f"truncated box header at byte {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise Mp4Error(f"truncated 64-bit box header at byte {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # "to the end of the file"
            size = end - pos
        if size < header or pos + size > end:
            raise Mp4Error(f"box {kind!r} at byte {pos} claims {size} bytes; {end - pos} remain")
        yield bytes(kind), pos, header, size
        pos += size


def _shift_chunk_offsets(moov: memoryview, delta: int) -> int:
    """Add ``delta`` to every stco/co64 entry inside a (writeable) moov box; returns how many
    tables were patched."""
    patched = 0

    def visit(start: int, end: int) -> None:
        nonlocal patched
        for kind, pos, header, size in iter_boxes(moov, start, end):
            body = pos + header
            if kind in CONTAINERS:
                visit(body, pos + size)
            elif kind in (b"stco", b"co64"):
                (count,) = struct.unpack_from(">I", moov, body + 4)  # after version+flags
                width = 4 if kind == b"stco" else 8
                if body + 8 + count * width > pos + size:
                    raise Mp4Error(f"{kind.decode()} table overruns its box")
                dtype = np.dtype(">u4" if width == 4 else ">u8")
                table: npt.NDArray[Any] = np.frombuffer(moov, dtype=dtype, count=count,
                                                        offset=body + 8)
                shifted = table.astype(np.uint64) + np.uint64(delta)
                if width == 4 and count and int(shifted.max()) > 0xFFFFFFFF:
                    raise Mp4Error("chunk offsets past 4 GiB need co64; not an appliance video")
                table[...] = shifted.astype(dtype)
                patched += 1

    visit(0, len(moov))
    return patched


def _moov_parts(data: memoryview, pos: int, header: int,
                size: int) -> tuple[int, list[tuple[int, int]]]:
    """The moov box without its ``DROPPED`` children: (new size, [(start, size)] of its kept
    children in the input)."""
    kept = [(start, length) for kind, start, _h, length in iter_boxes(data, pos + header,
                                                                       pos + size)
            if kind not in DROPPED]
    return 8 + sum(length for _s, length in kept), kept


def faststart(data: memoryview, owner: str = "") -> tuple[SecureBuffer, memoryview]:
    """A copy of the MP4 with ``moov`` before ``mdat``, in a secure buffer of ``owner``.

    Top-level boxes keep their relative order apart from ``moov``, which goes right after
    ``ftyp``. ``moov``'s ``udta`` child (FFmpeg's empty iTunes ``meta``; the booth's outputs carry
    no metadata box at all) is left out.
    """
    data = memoryview(data).cast("B")
    boxes = list(iter_boxes(data))
    kinds = [kind for kind, *_ in boxes]
    if b"moov" not in kinds or b"mdat" not in kinds:
        raise Mp4Error(f"an MP4 needs moov and mdat boxes; found {[k.decode() for k in kinds]}")
    if kinds.count(b"moov") != 1:
        raise Mp4Error("more than one moov box")
    moov_index = kinds.index(b"moov")
    if moov_index < kinds.index(b"mdat"):
        raise Mp4Error("moov already precedes mdat; this writer always puts it last")
    _kind, moov_pos, moov_header, moov_size = boxes[moov_index]
    new_moov_size, kept = _moov_parts(data, moov_pos, moov_header, moov_size)
    total = len(data) - moov_size + new_moov_size
    buffer = REGISTRY.allocate(total, owner=owner, label="mp4-faststart")
    out = buffer.memoryview()
    try:
        # moov goes right after ftyp (or first, when there is none).
        insert_at = kinds.index(b"ftyp") + 1 if b"ftyp" in kinds else 0
        order = [i for i in range(len(boxes)) if i != moov_index]
        order.insert(insert_at, moov_index)
        pos = 0
        moov_out = 0
        for index in order:
            _k, start, _h, size = boxes[index]
            if index == moov_index:
                moov_out = pos
                struct.pack_into(">I4s", out, pos, new_moov_size, b"moov")
                pos += 8
                for child, length in kept:
                    out[pos:pos + length] = data[child:child + length]
                    pos += length
                continue
            out[pos:pos + size] = data[start:start + size]
            pos += size
        # Every box that was before moov and now follows it (mdat among them) moved by its size.
        if _shift_chunk_offsets(out[moov_out:moov_out + new_moov_size], new_moov_size) == 0:
            raise Mp4Error("moov holds no chunk offset table")
    except BaseException:
        buffer.release()
        raise
    return buffer, out
