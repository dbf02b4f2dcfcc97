"""The ONNX Runtime backend: correct results, secure caller-owned buffers, zeroise, integrity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from appliance.models.backend import Backend, BackendError, ModelIntegrityError
from appliance.models.onnxruntime_backend import (
    OnnxRuntimeBackend,
    default_threads,
    session_options,
)
from appliance.secure.buffers import REGISTRY
from appliance.secure.malloc_env import MALLOC_ENV
from tests.model_graphs import conv_prelu_model, conv_prelu_reference, random_inputs, write_model

MODEL = "test_conv"


@pytest.fixture()
def model_file(tmp_path: Path) -> tuple[Path, str]:
    return write_model(tmp_path, MODEL, conv_prelu_model())


@pytest.fixture()
def backend(model_file: tuple[Path, str]):
    path, sha = model_file
    instance = OnnxRuntimeBackend(path, sha, MODEL, threads=1)
    yield instance
    instance.close()


def _owning_buffer(array: np.ndarray):
    address = array.__array_interface__["data"][0]
    for buffer in REGISTRY.live(f"backend:{MODEL}"):
        if buffer.address <= address and address + array.nbytes <= buffer.address + buffer.capacity:
            return buffer
    return None


def test_is_a_backend_with_static_specs(backend: OnnxRuntimeBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "onnxruntime"
    assert [(s.name, s.shape, s.dtype) for s in backend.inputs] == [
        ("image", (1, 3, 8, 8), np.dtype(np.float32)), ("gain", (1, 4, 1, 1), np.dtype(np.float32))]
    assert [s.name for s in backend.outputs] == ["features", "scores"]


def test_results_match_numpy_reference(backend: OnnxRuntimeBackend) -> None:
    for seed in (1, 2):
        feeds = random_inputs(seed)
        out = backend.run(feeds)
        ref = conv_prelu_reference(**feeds)
        np.testing.assert_allclose(out["features"], ref["features"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out["scores"], ref["scores"], rtol=1e-5, atol=1e-6)


def test_inputs_and_outputs_live_in_secure_buffers_written_in_place(
        backend: OnnxRuntimeBackend) -> None:
    out = backend.run(random_inputs())
    first = {name: view.__array_interface__["data"][0] for name, view in out.items()}
    for name, view in out.items():
        buffer = _owning_buffer(view)
        assert buffer is not None, f"output {name} is not in a secure buffer of the backend"
        assert buffer.owner == f"backend:{MODEL}"
    assert _owning_buffer(backend.input_buffer("image")) is not None
    again = backend.run(random_inputs(5))
    assert {n: v.__array_interface__["data"][0] for n, v in again.items()} == first
    # ORT wrote straight into our buffer: the view we got first now shows the second result.
    np.testing.assert_allclose(out["scores"], conv_prelu_reference(**random_inputs(5))["scores"],
                               rtol=1e-5, atol=1e-6)


def test_feed_written_directly_into_the_input_buffer(backend: OnnxRuntimeBackend) -> None:
    feeds = random_inputs(9)
    image = backend.input_buffer("image")
    image[...] = feeds["image"]
    out = backend.run({"image": image, "gain": feeds["gain"]})
    np.testing.assert_allclose(out["features"], conv_prelu_reference(**feeds)["features"],
                               rtol=1e-5, atol=1e-5)


def test_zeroise_wipes_inputs_and_outputs_and_backend_still_runs(
        backend: OnnxRuntimeBackend) -> None:
    out = backend.run(random_inputs())
    image = backend.input_buffer("image")
    assert np.any(out["features"]) and np.any(image)
    backend.zeroise()
    for view in [*out.values(), image, backend.input_buffer("gain")]:
        assert not np.any(view)
    feeds = random_inputs(4)
    np.testing.assert_allclose(backend.run(feeds)["features"],
                               conv_prelu_reference(**feeds)["features"], rtol=1e-5, atol=1e-5)


def test_hash_mismatch_is_refused_naming_file_and_both_hashes(
        model_file: tuple[Path, str]) -> None:
    path, sha = model_file
    wrong = "0" * 64
    before = len(REGISTRY.live(f"backend:{MODEL}"))
    with pytest.raises(ModelIntegrityError) as info:
        OnnxRuntimeBackend(path, wrong, MODEL)
    message = str(info.value)
    assert str(path) in message and sha in message and wrong in message
    assert len(REGISTRY.live(f"backend:{MODEL}")) == before


def test_tampered_file_is_refused(model_file: tuple[Path, str]) -> None:
    path, sha = model_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        OnnxRuntimeBackend(path, sha, MODEL)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"does not exist.*ephemera build"):
        OnnxRuntimeBackend(tmp_path / "absent.onnx", "a" * 64, MODEL)


def test_session_options_disable_the_arena() -> None:
    options = session_options(3)
    assert options.enable_cpu_mem_arena is False
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.intra_op_num_threads == 3
    assert options.optimized_model_filepath == ""  # nothing written to disk
    # workers spin between layers, but for 500 us only, so an idle booth does not burn a core
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.intra_op.spin_duration_us") == "500"


def test_backend_uses_those_options(backend: OnnxRuntimeBackend) -> None:
    assert backend.options.enable_cpu_mem_arena is False
    assert backend.options.intra_op_num_threads == 1


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 2), (3, 2), (4, 3), (6, 4), (12, 4)])
def test_default_threads_for_small_boards(cpus: int, threads: int) -> None:
    assert default_threads(cpus) == threads


def test_bad_feeds_are_refused(backend: OnnxRuntimeBackend) -> None:
    feeds = random_inputs()
    with pytest.raises(BackendError, match="has shape"):
        backend.run({**feeds, "image": np.zeros((1, 3, 4, 4), np.float32)})
    with pytest.raises(BackendError, match="no input 'bogus'"):
        backend.run({**feeds, "bogus": feeds["gain"]})
    with pytest.raises(BackendError, match="'gain' was not given"):
        backend.run({"image": feeds["image"]})
    with pytest.raises(BackendError, match="dtype"):
        backend.run({**feeds, "image": feeds["image"].astype(np.complex64)})


def test_survives_a_registry_purge(backend: OnnxRuntimeBackend) -> None:
    backend.run(random_inputs())
    REGISTRY.release_all()
    feeds = random_inputs(6)
    out = backend.run(feeds)
    np.testing.assert_allclose(out["scores"], conv_prelu_reference(**feeds)["scores"],
                               rtol=1e-5, atol=1e-6)
    assert _owning_buffer(out["scores"]) is not None


def test_close_releases_buffers(model_file: tuple[Path, str]) -> None:
    path, sha = model_file
    instance = OnnxRuntimeBackend(path, sha, MODEL, threads=1)
    instance.run(random_inputs())
    assert REGISTRY.live(f"backend:{MODEL}")
    instance.close()
    assert not REGISTRY.live(f"backend:{MODEL}")
    with pytest.raises(BackendError, match="closed"):
        instance.run(random_inputs())


# -- behaviour: no intermediate activation survives a run ------------------------------------

A, C = np.float32(1.2345678), np.float32(2.7182817)  # the child computes y = x + c = A + C
HOLDER = Path(__file__).resolve().parent / "programs" / "activation_holder.py"




def _scan(pid: int, needle: bytes) -> int:
    """How many times ``needle`` occurs in the readable private memory of ``pid``."""
    hits = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(v, 16) for v in parts[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            hits += chunk.count(needle)
    return hits


@pytest.mark.parametrize("shape", [(1, 4, 32, 32), (1, 32, 64, 64)], ids=["heap", "mmap"])
def test_no_activation_survives_a_run_under_the_malloc_environment(
        tmp_path: Path, shape: tuple[int, ...]) -> None:
    from tests.model_graphs import add_reduce_model

    path, sha = write_model(tmp_path, "canary", add_reduce_model(shape, float(C)))
    needle = np.full(256, A + C, dtype=np.float32).tobytes()
    env = {**os.environ, **MALLOC_ENV, "PYTHONPATH": str(Path(__file__).parent.parent)}
    found = {}
    for mode in ("arena", "backend"):
        child = subprocess.Popen(
            [sys.executable, str(HOLDER), str(path), sha, mode, repr(shape), repr(float(A))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline()
            assert line.startswith("ready"), line
            expected = float(np.prod(shape)) * float(A + C)
            assert abs(float(line.split()[1]) - expected) <= 1e-3 * expected
            found[mode] = _scan(child.pid, needle)
            child.stdin.write("\n")
            child.stdin.flush()
        finally:
            child.wait(timeout=30)
    # The control proves the scanner sees a live activation; the backend leaves none behind.
    assert found["arena"] > 0
    assert found["backend"] == 0  # under the service's own malloc environment
