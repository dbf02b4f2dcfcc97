"""Stream a decrypted result to the client without leaving copies behind.

gunicorn only accepts ``bytes`` from a WSGI body, and ``bytes`` are immutable: a naive
``bytes(buffer)`` would leave the whole result in the heap until the allocator reuses it. This
body owns one chunk-sized ``bytes`` object that it refills in place (gunicorn's ``sendall`` has
finished with a chunk before the next is requested) and zeroes when the response closes, together
with the plaintext secure buffer.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

from appliance.secure.buffers import SecureBuffer, explicit_bzero

CHUNK = 64 << 10


def _address(chunk: bytes) -> int:
    """The address of a bytes object's data (CPython: what ctypes passes for c_char_p)."""
    value = ctypes.cast(ctypes.c_char_p(chunk), ctypes.c_void_p).value
    assert value is not None
    return value


class SecureBody:
    """A WSGI iterable over a secure buffer (or the byte range ``[start, stop)`` of it, for an
    HTTP Range request); ``close()`` wipes and releases everything."""

    def __init__(self, plaintext: SecureBuffer, chunk_size: int = CHUNK, *, start: int = 0,
                 stop: int | None = None) -> None:
        self.plaintext = plaintext
        self.chunk_size = chunk_size
        self.start = start
        self.stop = plaintext.nbytes if stop is None else stop
        if not 0 <= self.start <= self.stop <= plaintext.nbytes:
            raise ValueError("the range does not fit the buffer")
        self._chunks: list[bytes] = []  # at most two sizes: the full chunk and the tail

    def __len__(self) -> int:
        return self.stop - self.start

    def _scratch(self, size: int) -> bytes:
        for chunk in self._chunks:
            if len(chunk) == size:
                return chunk
        # bytes(n) for n >= 2 is always a fresh object (0 and 1 byte objects are shared
        # singletons in CPython: never written to; see __iter__).
        chunk = bytes(size)
        self._chunks.append(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        for offset in range(self.start, self.stop, self.chunk_size):
            size = min(self.chunk_size, self.stop - offset)
            if size < 2:
                yield bytes(self.plaintext.view()[offset:offset + size])
                continue
            chunk = self._scratch(size)
            ctypes.memmove(_address(chunk), self.plaintext.address + offset, size)
            yield chunk

    def close(self) -> None:
        for chunk in self._chunks:
            explicit_bzero(_address(chunk), len(chunk))
        self._chunks.clear()
        self.plaintext.release()
