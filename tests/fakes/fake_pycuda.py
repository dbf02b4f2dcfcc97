"""FakeCudaDriver: a stand-in for ``pycuda.driver``. It is NOT CUDA and proves nothing about a GPU.

Why it exists: the development and CI machines have no NVIDIA GPU, yet the code *around*
TensorRT (buffer allocation once per engine, activation memory we own, zeroise ordering) must be
tested. This fake implements only the subset of pycuda.driver the TensorRT backend calls, with
the semantics that matter for those tests:

* "device" memory is ordinary host memory at real addresses, 256-byte aligned like cudaMalloc,
  and starts full of garbage (cudaMalloc does not clear);
* ``*_async`` copies and memsets are queued on their stream and happen only at
  ``Stream.synchronize()``, so code that touches a buffer before synchronising is caught;
* every call is appended to ``events`` so tests can check what was done, in which order.

Inject it with ``install_fakes`` (tests/fakes/fake_tensorrt.py), never on a real device.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

ALIGNMENT = 256
GARBAGE = 0xA5


class Error(Exception):
    """pycuda.driver.Error"""


class MemoryError(Error):
    """pycuda.driver.MemoryError: cuMemAlloc failed."""


class LogicError(Error):
    """pycuda.driver.LogicError"""


class DeviceAllocation:
    """What ``mem_alloc`` returns; ``int()`` gives the device pointer."""

    def __init__(self, driver: FakeCudaDriver, nbytes: int) -> None:
        self._raw = (ctypes.c_ubyte * (nbytes + ALIGNMENT))()
        base = ctypes.addressof(self._raw)
        self.address = (base + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        self.nbytes = nbytes
        self.freed = False
        ctypes.memset(self.address, GARBAGE, nbytes)
        self._driver = driver

    def __int__(self) -> int:
        return self.address

    def __index__(self) -> int:
        return self.address

    def free(self) -> None:
        self.freed = True
        self._driver.events.append(("free", self.address))

    def contents(self) -> np.ndarray:
        """The bytes of this allocation (test helper, not pycuda API)."""
        return np.ctypeslib.as_array((ctypes.c_ubyte * self.nbytes).from_address(self.address))


class Stream:
    def __init__(self, driver: FakeCudaDriver) -> None:
        self._driver = driver
        self.handle = next(driver._handles)
        self.pending: list[Callable[[], None]] = []
        driver.streams[self.handle] = self

    def synchronize(self) -> None:
        self._driver.events.append(("synchronize", self.handle))
        while self.pending:
            self.pending.pop(0)()

    def enqueue(self, op: Callable[[], None]) -> None:
        self.pending.append(op)


class _Context:
    def __init__(self, driver: FakeCudaDriver) -> None:
        self._driver = driver

    def push(self) -> None:
        self._driver.context_depth += 1
        self._driver.events.append(("push",))

    def pop(self) -> None:
        self._driver.context_depth -= 1
        self._driver.events.append(("pop",))

    def detach(self) -> None:
        pass


class Device:
    def __init__(self, driver: FakeCudaDriver, ordinal: int) -> None:
        self._driver = driver
        self.ordinal = ordinal

    def compute_capability(self) -> tuple[int, int]:
        return self._driver.capability

    def name(self) -> str:
        return self._driver.device_name

    def retain_primary_context(self) -> _Context:
        return _Context(self._driver)


def _address(pointer: Any) -> int:
    return int(pointer)


class FakeCudaDriver:
    """The fake ``pycuda.driver`` module (an object whose attributes mirror the module)."""

    Error = Error
    MemoryError = MemoryError
    LogicError = LogicError

    def __init__(self, capability: tuple[int, int] = (8, 7), device_name: str = "Fake Orin",
                 memory_limit: int | None = None) -> None:
        self.capability = capability
        self.device_name = device_name
        self.memory_limit = memory_limit  # mem_alloc above this raises MemoryError
        self.events: list[tuple[Any, ...]] = []
        self.allocations: list[DeviceAllocation] = []
        self.pinned: list[np.ndarray] = []
        self.streams: dict[int, Stream] = {}
        self.context_depth = 0
        self.initialised = False
        self._handles = itertools.count(0x7F00)

    # -- module-level functions of pycuda.driver --------------------------------------------

    def init(self) -> None:
        self.initialised = True

    def Device(self, ordinal: int) -> Device:  # noqa: N802 - pycuda's class name
        return Device(self, ordinal)

    def Stream(self) -> Stream:  # noqa: N802
        return Stream(self)

    def mem_alloc(self, nbytes: int) -> DeviceAllocation:
        self._need_context("mem_alloc")
        if self.memory_limit is not None and nbytes > self.memory_limit:
            raise MemoryError("cuMemAlloc failed: out of memory")
        allocation = DeviceAllocation(self, nbytes)
        self.allocations.append(allocation)
        self.events.append(("mem_alloc", allocation.address, nbytes))
        return allocation

    def pagelocked_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        self._need_context("pagelocked_empty")
        array = np.empty(shape, dtype)
        array.view(np.uint8).reshape(-1)[:] = GARBAGE
        self.pinned.append(array)
        self.events.append(("pagelocked_empty", tuple(shape), np.dtype(dtype).str))
        return array

    def memcpy_htod_async(self, dest: Any, src: np.ndarray, stream: Stream | None = None) -> None:
        address, data = _address(dest), src

        def copy() -> None:
            ctypes.memmove(address, data.ctypes.data, data.nbytes)

        self._queue(stream, ("memcpy_htod_async", address, src.nbytes), copy)

    def memcpy_dtoh_async(self, dest: np.ndarray, src: Any, stream: Stream | None = None) -> None:
        address, target = _address(src), dest

        def copy() -> None:
            ctypes.memmove(target.ctypes.data, address, target.nbytes)

        self._queue(stream, ("memcpy_dtoh_async", address, dest.nbytes), copy)

    def memset_d8_async(self, dest: Any, data: int, count: int,
                        stream: Stream | None = None) -> None:
        address = _address(dest)
        self._queue(stream, ("memset_d8_async", address, data, count),
                    lambda: ctypes.memset(address, data, count))

    def memset_d8(self, dest: Any, data: int, count: int) -> None:
        self._need_context("memset_d8")
        ctypes.memset(_address(dest), data, count)
        self.events.append(("memset_d8", _address(dest), data, count))

    # -- helpers for tests ---------------------------------------------------------------------

    def allocation_at(self, address: int) -> DeviceAllocation:
        for allocation in self.allocations:
            if allocation.address == address:
                return allocation
        raise KeyError(hex(address))

    def _queue(self, stream: Stream | None, event: tuple[Any, ...],
               op: Callable[[], None]) -> None:
        self._need_context(event[0])
        self.events.append((*event, stream.handle if stream else None))
        if stream is None:
            op()
        else:
            stream.enqueue(op)

    def _need_context(self, what: str) -> None:
        if self.context_depth <= 0:
            raise LogicError(f"{what}: no CUDA context is current")
