"""Secure buffers: the only memory that should ever hold a guest's bytes.

Why not plain NumPy arrays: freed heap memory keeps its contents (glibc, pymalloc and NumPy's
small-block cache all recycle without clearing), can be swapped to disk and lands in core dumps.
A ``SecureBuffer`` is a page-aligned mapping the service owns outright:

* ``memfd_secret`` where the kernel has it (Linux 5.14+): locked, not dumpable, removed from the
  kernel's direct map, zeroed by the kernel when freed; even ``/proc/PID/mem`` cannot read it;
* otherwise an anonymous private mapping, ``mlock``-ed where RLIMIT_MEMLOCK allows, with
  ``MADV_DONTDUMP`` and ``MADV_WIPEONFORK``.

Either way ``wipe()`` overwrites it with ``explicit_bzero`` (which the compiler may not elide)
and ``release()`` wipes then unmaps. The module-level ``REGISTRY`` tracks every live buffer by
owner (a job id) so a job's release, or a SIGTERM, wipes everything in one call.

The setting ``secure.memfd_secret = false`` (``EPHEMERA_SECURE_MEMFD_SECRET=0``) turns
``memfd_secret`` off through ``use_memfd_secret``; the memory-scan tests use it to prove their
scanner can see ordinary locked buffers while a job is alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

PAGE = mmap.PAGESIZE
MADV_WIPEONFORK = 18  # Python's mmap module has no constant for it
_SYS_MEMFD_SECRET = {"x86_64": 447, "aarch64": 447}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.explicit_bzero.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.explicit_bzero.restype = None
_libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mlock.restype = ctypes.c_int
_libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.munlock.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long


def explicit_bzero(address: int, nbytes: int) -> None:
    """Overwrite raw memory with zeros in a way the optimiser cannot remove."""
    if nbytes > 0:
        _libc.explicit_bzero(ctypes.c_void_p(address), ctypes.c_size_t(nbytes))


def wipe_array(array: npt.NDArray[Any]) -> None:
    """Zero an array a library handed us (a decoder's output, a backend's result).

    Fails loudly on a read-only array: such an array is a view of immutable memory (``bytes``)
    that can never be wiped, which is a design error upstream, not something to skip.
    """
    if array.size == 0:
        return
    if not array.flags.writeable:
        raise ValueError("cannot wipe a read-only array; it views immutable memory")
    array.fill(0)


def wipe_bytearray(data: bytearray | memoryview) -> None:
    """Zero a bytearray or writeable memoryview in place."""
    view = memoryview(data).cast("B")
    if view.readonly:
        raise ValueError("cannot wipe read-only memory")
    if view.nbytes:
        holder = (ctypes.c_char * view.nbytes).from_buffer(view)
        explicit_bzero(ctypes.addressof(holder), view.nbytes)
        del holder
    view.release()


def _round_up(nbytes: int) -> int:
    return max(PAGE, (nbytes + PAGE - 1) // PAGE * PAGE)


_memfd_secret_wanted = True  # the configuration's secure.memfd_secret, via use_memfd_secret


def use_memfd_secret(enabled: bool) -> None:
    """Apply ``secure.memfd_secret``: whether new buffers use memfd_secret where it exists."""
    global _memfd_secret_wanted
    _memfd_secret_wanted = bool(enabled)


def _memfd_secret_enabled() -> bool:
    return _memfd_secret_wanted


def _open_memfd_secret() -> int:
    """A memfd_secret file descriptor, or -1 where the kernel lacks or refuses it."""
    number = _SYS_MEMFD_SECRET.get(os.uname().machine)
    if number is None or not _memfd_secret_enabled():
        return -1
    # O_CLOEXEC: a fork+exec in another thread must not inherit the descriptor meanwhile.
    fd = int(_libc.syscall(ctypes.c_long(number), ctypes.c_uint(os.O_CLOEXEC)))
    return fd if fd >= 0 else -1


class SecureBuffer:
    """A wipeable, lockable, non-dumpable block of memory exposed as NumPy views."""

    def __init__(self, nbytes: int, owner: str = "", label: str = "") -> None:
        if nbytes <= 0:
            raise ValueError("a secure buffer needs at least one byte")
        self.nbytes = nbytes
        self.capacity = _round_up(nbytes)
        self.owner = owner
        self.label = label
        self.kind, self.locked, self._map = self._map_memory(self.capacity)
        self._anchor = ctypes.c_char.from_buffer(self._map)
        self.address = ctypes.addressof(self._anchor)
        if self.kind == "anonymous":
            self.locked = _libc.mlock(ctypes.c_void_p(self.address), self.capacity) == 0
        self.released = False
        self.on_release: Callable[[], None] | None = None  # e.g. give a budget back
        # Re-entrant: a SIGTERM handler (main thread) may wipe everything while that same
        # thread is half-way through releasing this buffer; other threads wait for it.
        self._state = threading.RLock()
        self._releasing = False

    @staticmethod
    def _map_memory(size: int) -> tuple[str, bool, mmap.mmap]:
        fd = _open_memfd_secret()
        if fd >= 0:
            try:
                os.ftruncate(fd, size)
                mapping = mmap.mmap(fd, size, mmap.MAP_SHARED,
                                    mmap.PROT_READ | mmap.PROT_WRITE)
                mapping[0:1] = b"\0"  # fault the first page in: ENOMEM shows here, not later
                return "memfd_secret", True, mapping
            except (OSError, ValueError):
                pass
            finally:
                os.close(fd)
        mapping = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                            mmap.PROT_READ | mmap.PROT_WRITE)
        for advice in (getattr(mmap, "MADV_DONTDUMP", 16), MADV_WIPEONFORK):
            with contextlib.suppress(OSError):
                mapping.madvise(advice)
        return "anonymous", False, mapping

    def view(self, dtype: npt.DTypeLike = np.uint8, shape: tuple[int, ...] | None = None,
             offset: int = 0) -> npt.NDArray[Any]:
        """A writeable NumPy view of (part of) the buffer; no copy is made."""
        self._check_live()
        dt = np.dtype(dtype)
        if shape is None:
            count = (self.nbytes - offset) // dt.itemsize
            shape = (count,)
        count = int(np.prod(shape)) if shape else 1
        if offset < 0 or offset + count * dt.itemsize > self.capacity:
            raise ValueError(f"a view of {count * dt.itemsize} bytes at offset {offset} does "
                             f"not fit a {self.capacity}-byte buffer")
        return np.frombuffer(self._map, dtype=dt, count=count, offset=offset).reshape(shape)

    def memoryview(self) -> memoryview:
        """A writeable memoryview over the first ``nbytes`` (for ``readinto``)."""
        self._check_live()
        return memoryview(self._map)[: self.nbytes]

    def wipe(self) -> None:
        """Overwrite the whole mapping with zeros."""
        with self._state:
            if not self.released:
                explicit_bzero(self.address, self.capacity)

    def release(self) -> None:
        """Wipe, unlock and unmap. Idempotent and safe to call from a signal handler or from
        two threads at once. Views that outlive it see zeros, never data."""
        with self._state:
            if self.released:
                return
            if self._releasing:
                # Re-entered from a signal handler on this thread mid-release: the mapping is
                # still there (``released`` is set before unmapping), so wiping is safe, and the
                # interrupted call finishes the rest.
                explicit_bzero(self.address, self.capacity)
                return
            self._releasing = True
            explicit_bzero(self.address, self.capacity)
            if self.locked and self.kind == "anonymous":
                _libc.munlock(ctypes.c_void_p(self.address), self.capacity)
            self.released = True
            del self._anchor
            # A caller still holding a view keeps the mapping alive; it is already zeroed, and
            # the garbage collector unmaps it when the last view goes.
            try:
                self._map.close()
            except BufferError:
                REGISTRY.note_lingering(self._map)
        REGISTRY.forget(self)
        hook, self.on_release = self.on_release, None
        if hook is not None:
            hook()

    @property
    def unmapped(self) -> bool:
        """True once the memory is returned to the kernel (not only wiped)."""
        return bool(self._map.closed)

    def _check_live(self) -> None:
        if self.released:
            raise ValueError(f"secure buffer {self.label or ''} was already released")

    def __enter__(self) -> SecureBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.released else f"{self.kind}, locked={self.locked}"
        return f"SecureBuffer({self.nbytes} bytes, owner={self.owner!r}, {state})"


class BufferRegistry:
    """Every live secure buffer, grouped by owner, so release can never miss one."""

    def __init__(self) -> None:
        # Re-entrant: the shutdown handler calls release_all() on the main thread, which may
        # have been interrupted while holding this lock (a plain Lock would deadlock there).
        self._lock = threading.RLock()
        self._live: dict[int, SecureBuffer] = {}
        # Released (wiped) buffers whose mapping a leftover view still pins: wiped, but still
        # mapped (and, for memfd_secret, still locked) until that view goes. Should stay empty.
        self._lingering: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()

    def note_lingering(self, mapping: mmap.mmap) -> None:
        with self._lock:
            self._lingering.add(mapping)

    def lingering(self) -> int:
        """How many released buffers are still mapped because something holds a view."""
        with self._lock:
            return sum(1 for mapping in self._lingering if not mapping.closed)

    def allocate(self, nbytes: int, owner: str = "", label: str = "") -> SecureBuffer:
        buffer = SecureBuffer(nbytes, owner=owner, label=label)
        with self._lock:
            self._live[id(buffer)] = buffer
        return buffer

    def array(self, shape: tuple[int, ...], dtype: npt.DTypeLike = np.uint8, owner: str = "",
              label: str = "") -> tuple[SecureBuffer, npt.NDArray[Any]]:
        """Allocate a buffer sized for an array and return both (the view is zero-filled)."""
        dt = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dt.itemsize)
        buffer = self.allocate(nbytes, owner=owner, label=label)
        return buffer, buffer.view(dt, shape)

    def forget(self, buffer: SecureBuffer) -> None:
        with self._lock:
            self._live.pop(id(buffer), None)

    def live(self, owner: str | None = None) -> list[SecureBuffer]:
        with self._lock:
            return [b for b in self._live.values() if owner is None or b.owner == owner]

    def release_owner(self, owner: str) -> int:
        """Wipe and unmap every buffer of one owner (a job); returns how many."""
        buffers = self.live(owner)
        for buffer in buffers:
            buffer.release()
        return len(buffers)

    def release_all(self) -> int:
        """Wipe and unmap everything: shutdown, purge, the kiosk's idle reset."""
        buffers = self.live()
        for buffer in buffers:
            buffer.release()
        return len(buffers)

    def stats(self) -> dict[str, int]:
        """Counts for health pages: never contents."""
        buffers = self.live()
        return {
            "buffers": len(buffers),
            "bytes": sum(b.capacity for b in buffers),
            "unlocked": sum(1 for b in buffers if not b.locked),
            "memfd_secret": sum(1 for b in buffers if b.kind == "memfd_secret"),
            "lingering": self.lingering(),
        }

    def __iter__(self) -> Iterator[SecureBuffer]:
        return iter(self.live())


REGISTRY = BufferRegistry()


def memfd_secret_available() -> bool:
    """Whether this kernel gives memfd_secret pages (for `ephemera doctor`)."""
    fd = _open_memfd_secret()
    if fd < 0:
        return False
    os.close(fd)
    return True


def memlock_limit() -> tuple[int, int]:
    """RLIMIT_MEMLOCK (soft, hard); -1 means unlimited."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return (soft if soft != resource.RLIM_INFINITY else -1,
            hard if hard != resource.RLIM_INFINITY else -1)


__all__ = [
    "PAGE",
    "REGISTRY",
    "BufferRegistry",
    "SecureBuffer",
    "explicit_bzero",
    "memfd_secret_available",
    "memlock_limit",
    "wipe_array",
    "wipe_bytearray",
]
