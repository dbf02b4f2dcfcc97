"""Secure buffers: wiping really zeroes memory, release is per owner, the fallback is locked."""

from __future__ import annotations

import ctypes
import os
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from appliance.secure import buffers
from appliance.secure.buffers import REGISTRY, SecureBuffer, memfd_secret_available

PATTERN = b"EPHEMERA-CANARY-"


def owner() -> str:
    return f"test-{uuid.uuid4().hex}"


def fill(buffer: SecureBuffer) -> np.ndarray:
    view = buffer.view()
    view[:] = np.frombuffer((PATTERN * (buffer.nbytes // len(PATTERN) + 1))[: buffer.nbytes],
                            dtype=np.uint8)
    return view


def read_raw(buffer: SecureBuffer) -> bytes:
    """The memory behind the buffer read by address, not through any view."""
    return ctypes.string_at(buffer.address, buffer.capacity)


def read_proc_mem(address: int, nbytes: int) -> bytes:
    with open("/proc/self/mem", "rb", buffering=0) as mem:
        mem.seek(address)
        return mem.read(nbytes)


def smaps_entry(address: int) -> str:
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for index, line in enumerate(lines):
        start = line.split("-", 1)[0]
        if "-" in line.split(" ", 1)[0] and int(start, 16) == address:
            entry = [line]
            for follow in lines[index + 1:]:
                if "-" in follow.split(" ", 1)[0] and not follow.split(" ", 1)[0].endswith(":"):
                    break
                entry.append(follow)
            return "\n".join(entry)
    raise AssertionError(f"no mapping at {address:#x}")


@pytest.fixture(params=["memfd_secret", "anonymous"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "memfd_secret":
        if not memfd_secret_available():
            pytest.skip("this kernel has no memfd_secret")
    else:
        monkeypatch.setattr(buffers, "_memfd_secret_wanted", False)
    return str(request.param)


def test_wipe_zeroes_the_memory_seen_through_a_view_and_by_address(kind: str) -> None:
    buffer = REGISTRY.allocate(10_000, owner=owner(), label="t")
    assert buffer.kind == kind
    view = fill(buffer)
    assert PATTERN in read_raw(buffer)
    assert bytes(view[: len(PATTERN)]) == PATTERN
    buffer.wipe()
    assert not view.any()
    assert read_raw(buffer) == bytes(buffer.capacity)  # the whole mapping, slack included
    buffer.release()


def test_views_that_outlive_release_see_zeros(kind: str) -> None:
    buffer = REGISTRY.allocate(5000, owner=owner())
    view = fill(buffer)
    buffer.release()
    assert buffer.released
    assert view.shape == (5000,)
    assert not view.any()
    with pytest.raises(ValueError, match="already released"):
        buffer.view()
    buffer.release()  # idempotent


def test_release_owner_releases_only_that_owner() -> None:
    mine, theirs = owner(), owner()
    a = REGISTRY.allocate(100, owner=mine)
    b_buf, _b_view = REGISTRY.array((4, 4, 3), np.uint8, owner=mine)
    c = REGISTRY.allocate(100, owner=theirs)
    fill(c)
    assert {id(x) for x in REGISTRY.live(mine)} == {id(a), id(b_buf)}
    assert REGISTRY.release_owner(mine) == 2
    assert a.released and b_buf.released and not c.released
    assert REGISTRY.live(mine) == []
    assert bytes(c.view()[: len(PATTERN)]) == PATTERN
    assert REGISTRY.release_owner(theirs) == 1


def test_memfd_secret_is_used_where_available_and_hides_pages_from_proc_mem() -> None:
    if not memfd_secret_available():
        pytest.skip("this kernel has no memfd_secret")
    buffer = REGISTRY.allocate(4096, owner=owner())
    try:
        assert buffer.kind == "memfd_secret" and buffer.locked
        fill(buffer)
        with pytest.raises(OSError):
            read_proc_mem(buffer.address, 64)
    finally:
        buffer.release()


def test_anonymous_fallback_is_locked_undumpable_and_readable_by_a_scanner(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffers, "_memfd_secret_wanted", False)
    buffer = REGISTRY.allocate(8192, owner=owner())
    try:
        assert buffer.kind == "anonymous"
        soft, _ = buffers.memlock_limit()
        if soft == -1 or soft >= 1 << 20 or os.geteuid() == 0:
            assert buffer.locked
            entry = smaps_entry(buffer.address)
            locked_kb = int(next(line.split()[1] for line in entry.splitlines()
                                 if line.startswith("Locked:")))
            assert locked_kb == buffer.capacity // 1024
        flags = next(line for line in smaps_entry(buffer.address).splitlines()
                     if line.startswith("VmFlags:")).split()[1:]
        assert "dd" in flags  # MADV_DONTDUMP: not in core dumps
        assert "wf" in flags  # MADV_WIPEONFORK: a forked child sees zeros
        fill(buffer)
        assert PATTERN in read_proc_mem(buffer.address, buffer.capacity)
        buffer.wipe()
        assert read_proc_mem(buffer.address, buffer.capacity) == bytes(buffer.capacity)
    finally:
        buffer.release()


def test_array_gives_a_zeroed_view_of_the_right_shape() -> None:
    buffer, view = REGISTRY.array((3, 5, 3), np.float32, owner=owner())
    try:
        assert view.shape == (3, 5, 3) and view.dtype == np.float32 and not view.any()
        assert view.flags.writeable
        view[...] = 1.5
        assert buffer.view(np.float32, (3, 5, 3)).sum() == pytest.approx(1.5 * 45)
    finally:
        buffer.release()


def test_wipe_helpers_zero_in_place_and_refuse_read_only_memory() -> None:
    data = bytearray(PATTERN * 10)
    buffers.wipe_bytearray(data)
    assert data == bytearray(len(data))
    array = np.arange(100, dtype=np.int32)
    buffers.wipe_array(array)
    assert not array.any()
    with pytest.raises(ValueError, match="read-only"):
        buffers.wipe_array(np.frombuffer(b"immutable", dtype=np.uint8))
    with pytest.raises(ValueError, match="read-only"):
        buffers.wipe_bytearray(memoryview(b"immutable"))


def test_release_all_from_a_signal_handler_cannot_deadlock_on_the_registry_lock() -> None:
    """A SIGTERM handler runs on the main thread, maybe while it holds the registry's lock."""
    who = owner()
    REGISTRY.allocate(100, owner=who)
    done = threading.Event()

    def interrupted_allocation() -> None:
        with REGISTRY._lock:  # as if allocate() was interrupted here by the handler
            REGISTRY.release_owner(who)
        done.set()

    worker = threading.Thread(target=interrupted_allocation, daemon=True)
    worker.start()
    worker.join(5)
    assert done.is_set(), "release inside the registry lock deadlocked"
    assert REGISTRY.live(who) == []


def test_concurrent_releases_of_the_same_buffers_are_safe() -> None:
    who = owner()
    made = [REGISTRY.allocate(4096, owner=who) for _ in range(20)]
    for buffer in made:
        fill(buffer)
    errors: list[BaseException] = []

    def release() -> None:
        try:
            REGISTRY.release_owner(who)
            for buffer in made:
                buffer.release()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=release) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(buffer.released for buffer in made)
    assert REGISTRY.live(who) == []


def test_release_reentered_mid_release_wipes_and_leaves_a_consistent_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a signal arriving inside release(): the nested call must not break the outer."""
    buffer = REGISTRY.allocate(4096, owner=owner())
    fill(buffer)
    real_bzero = buffers.explicit_bzero
    calls: list[int] = []

    def bzero_then_reenter(address: int, nbytes: int) -> None:
        real_bzero(address, nbytes)
        if not calls:
            calls.append(1)
            buffer.release()  # the "signal handler" releasing the same buffer
            assert not buffer.released  # the interrupted call still owns the rest

    monkeypatch.setattr(buffers, "explicit_bzero", bzero_then_reenter)
    buffer.release()
    assert buffer.released and calls == [1]
    assert REGISTRY.live(buffer.owner) == []
