"""File-like objects over secure buffers, for libraries that want a file (PyAV's muxer).

Why not ``io.BytesIO``: its storage is an ordinary heap block that grows by ``realloc``, so every
size it passed through is left behind in freed memory, unwiped. ``SecureSink`` grows by
allocating a larger secure buffer, copying and releasing (wiping) the old one. With
``wipe_written`` its ``write`` also zeroes each ``bytes`` chunk it was handed once copied: PyAV's
I/O callback slices its 32 KiB C buffer into a fresh ``bytes`` object for every write and drops it
afterwards, so that copy of the video would otherwise linger in freed memory. Only for writers
known to hand over throw-away chunks; never for ``bytes`` under ``WIPE_MIN`` (CPython shares
the empty and one-byte objects).
"""

from __future__ import annotations

import io
import sys
from typing import Any

from appliance.secure.buffers import REGISTRY, SecureBuffer, explicit_bzero

WIPE_MIN = 64
_BYTES_HEADER = sys.getsizeof(b"") - 1  # offset of a bytes object's data in CPython


def wipe_transient_bytes(chunk: object) -> None:
    """Zero the contents of a throw-away ``bytes`` object a library created for one call.

    CPython only (the data sits at a fixed offset in the object), ``WIPE_MIN`` bytes or more
    (never a shared singleton). The caller vouches that nobody will read the object again.
    """
    if (type(chunk) is bytes and len(chunk) >= WIPE_MIN
            and sys.implementation.name == "cpython"):
        explicit_bzero(id(chunk) + _BYTES_HEADER, len(chunk))


class _MemoryFile(io.RawIOBase):
    """Reading and positioning over bytes held in memory (``_contents``): what both the sink
    and the source are, as files."""

    _pos = 0

    def _contents(self) -> memoryview:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _target(self, offset: int, whence: int) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos,
                io.SEEK_END: self._contents().nbytes}[whence]
        return base + offset

    def readinto(self, target: Any) -> int:
        out = memoryview(target).cast("B")
        data = self._contents()
        count = max(0, min(out.nbytes, data.nbytes - self._pos))
        out[:count] = data[self._pos:self._pos + count]
        self._pos += count
        return count


class SecureSink(_MemoryFile):
    """A seekable, growable, write-and-read file held in secure buffers of one owner."""

    def __init__(self, owner: str, label: str = "secure-sink", initial: int = 1 << 20,
                 wipe_written: bool = False) -> None:
        super().__init__()
        self.wipe_written = wipe_written
        self.owner = owner
        self.label = label
        self._buffer: SecureBuffer = REGISTRY.allocate(initial, owner=owner, label=label)
        self._size = 0
        self._pos = 0
        self.grown = 0

    # io protocol -------------------------------------------------------------------------
    def _contents(self) -> memoryview:
        return self.getbuffer()

    def writable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = self._target(offset, whence)
        if position < 0:
            raise ValueError("negative seek position")
        self._pos = position
        return self._pos

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        count = view.nbytes
        end = self._pos + count
        self._reserve(end)
        self._buffer.memoryview()[self._pos:end] = view
        view.release()
        if self.wipe_written:
            wipe_transient_bytes(data)
        self._pos = end
        self._size = max(self._size, end)
        return count

    # ours ----------------------------------------------------------------------------------
    def _reserve(self, nbytes: int) -> None:
        if nbytes <= self._buffer.nbytes:
            return
        grown = REGISTRY.allocate(max(nbytes, 2 * self._buffer.nbytes), owner=self.owner,
                                  label=self.label)
        grown.memoryview()[:self._size] = self._buffer.memoryview()[:self._size]
        self._buffer.release()
        self._buffer = grown
        self.grown += 1

    @property
    def size(self) -> int:
        return self._size

    def getbuffer(self) -> memoryview:
        """The bytes written so far (a view into the secure buffer, valid until release)."""
        return self._buffer.memoryview()[:self._size]

    def release(self) -> None:
        """Wipe and unmap the storage."""
        self._buffer.release()

    def close(self) -> None:
        # PyAV closes the file it was given; the bytes must outlive that, so closing only marks
        # the stream closed. ``release`` wipes.
        super().close()


class SecureSource(_MemoryFile):
    """A read-only seekable file over a memoryview (a secure buffer's bytes)."""

    def __init__(self, data: memoryview) -> None:
        super().__init__()
        self._data = memoryview(data).cast("B")
        self._pos = 0

    def _contents(self) -> memoryview:
        return self._data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = max(0, self._target(offset, whence))
        return self._pos


__all__ = ["SecureSink", "SecureSource", "wipe_transient_bytes"]
