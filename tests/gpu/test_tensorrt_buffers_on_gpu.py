"""TensorRTBackend's buffer handling on a real NVIDIA GPU, with only the engine stood in.

Runs where pycuda imports and a CUDA device answers (the test machines have neither, so CI
skips it; see docs/engines.md for how it is run on a GPU machine). The engine is
``KernelTensorRT`` (tests/gpu/kernel_tensorrt.py), a stand-in whose "engine" is one real CUDA
kernel; everything else is the real driver: cudaMalloc'd buffers, page-locked host memory,
asynchronous copies on a stream, memset wipes. What it proves, by reading device memory back:

* a run moves the feeds to the device, through the registered addresses, and back;
* the guest's data really sits in the activation memory we gave TensorRT during a run, and
  ``zeroise()`` leaves every device buffer, the activations and the pinned host buffers zero;
* whatever a new device or pinned block holds (a previous user's bytes, stood in by the
  canary) is wiped at open, before anything can read it;
* the activation block is 256-byte aligned and ``close()`` gives the device memory back;
* a model opened in one thread runs and wipes in another (the primary context is pushed).
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (no GPU machine)")

CANARY = np.frombuffer(b"EPHEMERA-CANARY!" * 4, dtype=np.float32)  # 16 floats, exact bytes
SHAPE = (1, 3, 256, 256)
ACTIVATION_BYTES = 64 << 20  # a face model's activations are of this order


def _device_ready() -> bool:
    try:
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


if not _device_ready():
    pytest.skip("no CUDA device answers", allow_module_level=True)

from appliance.models.tensorrt_backend import TensorRTBackend  # noqa: E402
from appliance.models.tensorrt_support import CudaContext  # noqa: E402
from tests.gpu import kernel_tensorrt  # noqa: E402


@pytest.fixture()
def engine_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.setitem(sys.modules, "tensorrt", kernel_tensorrt.module())
    data = kernel_tensorrt.engine_bytes(SHAPE, ACTIVATION_BYTES)
    path = tmp_path / "kernel.engine"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture()
def backend(engine_file: tuple[Path, str]) -> Iterator[TensorRTBackend]:
    instance = TensorRTBackend(*engine_file, "kernel_model")
    yield instance
    instance.close()


def _canary_image() -> np.ndarray:
    count = int(np.prod(SHAPE))
    return np.resize(CANARY, count).reshape(SHAPE).astype(np.float32)


def _read_device(allocation: Any, nbytes: int) -> np.ndarray:
    """The device bytes as they are now, copied back synchronously."""
    host = np.empty(nbytes, dtype=np.uint8)
    with CudaContext.shared(cuda).current():
        cuda.memcpy_dtoh(host, allocation)
    return host


def _holds_canary(data: np.ndarray) -> bool:
    return CANARY.tobytes() in data.tobytes()


def _device_regions(backend: TensorRTBackend) -> list[tuple[str, Any, int]]:
    regions = [(b.spec.name, b.device, b.spec.nbytes) for b in backend._bindings]
    regions.append(("activations", backend._scratch, backend.activation_bytes))
    return regions


def test_a_run_goes_through_the_device_and_back(backend: TensorRTBackend) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    outputs = backend.run({"x": x})
    np.testing.assert_allclose(outputs["y"], 2 * x + 1, rtol=1e-6)
    assert kernel_tensorrt.STATE.engines[-1].contexts[0].runs == 1


def test_zeroise_leaves_every_device_and_pinned_byte_zero(backend: TensorRTBackend) -> None:
    backend.run({"x": _canary_image()})
    before = {name: _read_device(alloc, n) for name, alloc, n in _device_regions(backend)}
    # The scan sees the guest's data where a run leaves it: input, activations (not the output:
    # it holds 2x+1).
    assert _holds_canary(before["x"]) and _holds_canary(before["activations"])
    assert _holds_canary(backend.input_buffer("x"))

    backend.zeroise()

    for name, allocation, nbytes in _device_regions(backend):
        after = _read_device(allocation, nbytes)
        assert not after.any(), f"device buffer {name} not wiped"
    for binding in backend._bindings:
        assert not binding.host.any(), f"pinned host buffer {binding.spec.name} not wiped"


def test_stale_device_memory_is_wiped_at_open(engine_file: tuple[Path, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """cudaMalloc and cudaMallocHost promise nothing about what a new block holds.

    Whether a freed block comes back with its old bytes depends on the driver and the size (on
    the H200 checked, a 64 MiB block came back at the same address, zeroed); on a Jetson the GPU
    allocates from the same RAM as the CPU. So every block the backend gets is first filled with
    the canary here, as a previous user would have left it, and must read zero once open."""
    real_alloc, real_pinned = cuda.mem_alloc, cuda.pagelocked_empty
    stale = np.frombuffer(CANARY.tobytes(), np.uint8)

    def stale_device_block(nbytes: int) -> Any:
        block = real_alloc(nbytes)
        cuda.memcpy_htod(block, np.resize(stale, nbytes))
        return block

    def stale_pinned_block(shape: Any, dtype: Any) -> np.ndarray:
        host = real_pinned(shape, dtype)
        host.view(np.uint8).reshape(-1)[:] = np.resize(stale, host.nbytes)
        return host

    monkeypatch.setattr(cuda, "mem_alloc", stale_device_block)
    monkeypatch.setattr(cuda, "pagelocked_empty", stale_pinned_block)
    instance = TensorRTBackend(*engine_file, "kernel_model")
    try:
        regions = _device_regions(instance)
        assert len(regions) == 3
        for name, allocation, nbytes in regions:
            assert not _read_device(allocation, nbytes).any(), f"{name} not wiped at open"
        for binding in instance._bindings:
            assert not binding.host.any(), f"pinned {binding.spec.name} not wiped at open"
    finally:
        instance.close()


def test_activation_memory_is_ours_aligned_and_given_back(
        engine_file: tuple[Path, str]) -> None:
    with CudaContext.shared(cuda).current():
        free_before, _total = cuda.mem_get_info()
    instance = TensorRTBackend(*engine_file, "kernel_model")
    context = kernel_tensorrt.STATE.engines[-1].contexts[0]
    address, size = context.device_memory or (0, 0)
    assert size == ACTIVATION_BYTES == instance.activation_bytes
    assert address == int(instance._scratch) and address % 256 == 0
    with CudaContext.shared(cuda).current():
        free_open, _ = cuda.mem_get_info()
    assert free_before - free_open >= ACTIVATION_BYTES
    instance.close()
    with CudaContext.shared(cuda).current():
        free_after, _ = cuda.mem_get_info()
    assert free_before - free_after < ACTIVATION_BYTES // 4


def test_opened_in_one_thread_run_and_wiped_in_another(backend: TensorRTBackend) -> None:
    x = _canary_image()
    seen: dict[str, Any] = {}

    def job() -> None:
        try:
            seen["y"] = backend.run({"x": x})["y"].copy()
            backend.zeroise()
        except Exception as exc:  # reported to the test thread below
            seen["error"] = exc

    worker = threading.Thread(target=job)
    worker.start()
    worker.join(60)
    assert "error" not in seen, seen.get("error")
    np.testing.assert_allclose(seen["y"], 2 * x + 1, rtol=1e-6)
    for name, allocation, nbytes in _device_regions(backend):
        assert not _read_device(allocation, nbytes).any(), f"{name} not wiped"
