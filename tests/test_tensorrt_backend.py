"""TensorRTBackend around FakeTensorRT and the fake pycuda driver (no GPU here).

What these tests prove: buffers are allocated once, activation memory is ours (USER_MANAGED,
right size, 256-byte aligned), zeroise() synchronises and then clears every device buffer, the
activation memory and the pinned host buffers, and a tampered engine is refused. They prove
nothing about TensorRT's own numerics: the fake computes with ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.models.backend import Backend, BackendError, ModelIntegrityError
from appliance.models.tensorrt_support import TensorRTUnavailableError
from tests.fakes.fake_tensorrt import FakeTensorRT, fake_engine_bytes, install_fakes
from tests.model_graphs import conv_prelu_model, conv_prelu_reference, random_inputs

MODEL = "test_conv"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTensorRT:
    return install_fakes(monkeypatch)


@pytest.fixture()
def engine_file(tmp_path: Path, fake: FakeTensorRT) -> tuple[Path, str]:
    data = fake_engine_bytes(conv_prelu_model())
    path = tmp_path / "test.engine"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture()
def backend(engine_file: tuple[Path, str]):
    from appliance.models.tensorrt_backend import TensorRTBackend

    instance = TensorRTBackend(*engine_file, MODEL)
    yield instance
    instance.close()


def _engine_context(fake: FakeTensorRT):
    """The one execution context the backend created."""
    contexts = [c for engine in fake.engines for c in engine.contexts]
    assert len(contexts) == 1
    return contexts[0]


def test_runs_through_pinned_and_device_buffers(backend, fake: FakeTensorRT) -> None:
    assert isinstance(backend, Backend) and backend.name == "tensorrt"
    assert [s.name for s in backend.inputs] == ["image", "gain"]
    assert [(s.name, s.shape) for s in backend.outputs] == [
        ("features", (1, 4, 8, 8)), ("scores", (1, 4, 8, 8))]
    feeds = random_inputs(2)
    out = backend.run(feeds)
    ref = conv_prelu_reference(**feeds)
    np.testing.assert_allclose(out["features"], ref["features"], rtol=1e-5, atol=1e-5)
    # The returned arrays are the pinned host buffers themselves.
    assert any(np.shares_memory(out["scores"], pinned) for pinned in fake.cuda.pinned)
    assert fake.cuda.context_depth == 0  # every push was popped


def test_buffers_are_allocated_once(backend, fake: FakeTensorRT) -> None:
    allocs = [e for e in fake.cuda.events if e[0] in ("mem_alloc", "pagelocked_empty")]
    assert len([e for e in allocs if e[0] == "mem_alloc"]) == 4 + 1  # 4 tensors + activations
    assert len([e for e in allocs if e[0] == "pagelocked_empty"]) == 4
    for seed in range(3):
        backend.run(random_inputs(seed))
    after = [e for e in fake.cuda.events if e[0] in ("mem_alloc", "pagelocked_empty")]
    assert after == allocs


def test_activation_memory_is_user_managed_sized_and_aligned(backend, fake) -> None:
    context = _engine_context(fake)
    assert context.strategy is fake.ExecutionContextAllocationStrategy.USER_MANAGED
    assert context.device_memory is not None
    address, size = context.device_memory
    assert size == context.engine.device_memory_size_v2 == backend.activation_bytes
    assert address % 256 == 0
    allocation = fake.cuda.allocation_at(address)
    assert allocation.nbytes >= size and not allocation.freed
    # Every I/O tensor is bound to a device buffer of its own.
    io_addresses = set(context.addresses.values())
    assert len(io_addresses) == 4 and address not in io_addresses


def test_zeroise_clears_device_buffers_activations_and_pinned_host(backend, fake) -> None:
    backend.run(random_inputs(1))
    live = [a for a in fake.cuda.allocations if not a.freed]
    assert all(a.contents().any() for a in live), "the run should have left data everywhere"
    assert all(p.view(np.uint8).any() for p in fake.cuda.pinned)
    mark = len(fake.cuda.events)
    backend.zeroise()
    events = fake.cuda.events[mark:]
    assert events[0][0] == "push" and events[1][0] == "synchronize"
    assert events[-2][0] == "synchronize" and events[-1][0] == "pop"
    memsets = {(e[1], e[3]) for e in events if e[0] in ("memset_d8_async", "memset_d8")}
    assert memsets == {(a.address, a.nbytes) for a in live}
    for allocation in live:
        assert not allocation.contents().any()
    for pinned in fake.cuda.pinned:
        assert not pinned.view(np.uint8).any()
    feeds = random_inputs(3)
    np.testing.assert_allclose(backend.run(feeds)["scores"],
                               conv_prelu_reference(**feeds)["scores"], rtol=1e-5, atol=1e-6)


def test_zeroise_waits_for_work_in_flight(backend, fake) -> None:
    """A copy still queued on the stream must land before the host buffers are cleared."""
    backend.run(random_inputs(1))
    stale = fake.cuda.allocations[0]
    stale_bytes = np.full(stale.nbytes, 0x5A, np.uint8)
    stale.contents()[:] = stale_bytes
    output = backend.outputs[0].name
    target = backend.run(random_inputs(1))[output]
    stream = next(iter(fake.cuda.streams.values()))
    fake.cuda.context_depth += 1
    fake.cuda.memcpy_dtoh_async(target.view(np.uint8).reshape(-1)[:16], stale, stream)
    fake.cuda.context_depth -= 1
    backend.zeroise()
    assert not target.view(np.uint8).any()


def test_engine_hash_mismatch_is_refused_before_deserialising(engine_file, fake) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend

    path, sha = engine_file
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as info:
        TensorRTBackend(path, sha, MODEL)
    assert str(path) in str(info.value) and sha in str(info.value)
    assert fake.deserialized == 0 and not fake.cuda.allocations


def test_engine_from_another_tensorrt_is_a_clear_error(tmp_path: Path, fake) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend

    data = fake_engine_bytes(conv_prelu_model(), version="10.0.1.6")
    path = tmp_path / "old.engine"
    path.write_bytes(data)
    with pytest.raises(BackendError, match="rebuild with `ephemera build --force`"):
        TensorRTBackend(path, hashlib.sha256(data).hexdigest(), MODEL)


def test_out_of_gpu_memory_when_opening_is_a_clear_error(engine_file, fake) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend

    fake.cuda.memory_limit = 1000  # the activation block (4196 bytes) does not fit
    with pytest.raises(BackendError, match="out of GPU memory"):
        TensorRTBackend(*engine_file, MODEL)
    assert all(a.freed for a in fake.cuda.allocations)


def test_close_zeroises_and_frees_everything(engine_file, fake) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend

    instance = TensorRTBackend(*engine_file, MODEL)
    instance.run(random_inputs())
    instance.close()
    assert fake.cuda.allocations and all(a.freed for a in fake.cuda.allocations)
    assert all(not a.contents().any() for a in fake.cuda.allocations)
    with pytest.raises(BackendError, match="closed"):
        instance.run(random_inputs())


def test_feed_written_into_the_pinned_input_buffer(backend) -> None:
    feeds = random_inputs(8)
    backend.input_buffer("image")[...] = feeds["image"]
    out = backend.run({"image": backend.input_buffer("image"), "gain": feeds["gain"]})
    np.testing.assert_allclose(out["features"], conv_prelu_reference(**feeds)["features"],
                               rtol=1e-5, atol=1e-5)


def test_without_tensorrt_the_backend_says_so(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(TensorRTUnavailableError, match="ONNX Runtime"):
        TensorRTBackend(tmp_path / "x.engine", "0" * 64, MODEL)


def test_refused_tensor_shape_frees_what_was_allocated(engine_file, fake,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.models.tensorrt_backend import TensorRTBackend
    from tests.fakes.fake_tensorrt import FakeExecutionContext

    monkeypatch.setattr(FakeExecutionContext, "set_input_shape", lambda self, n, s: False)
    with pytest.raises(BackendError, match="refused shape"):
        TensorRTBackend(*engine_file, MODEL)
    assert fake.cuda.allocations and all(a.freed for a in fake.cuda.allocations)
