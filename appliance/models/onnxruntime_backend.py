"""ONNX Runtime on the CPU: the backend of every machine without TensorRT.

Privacy design (see the backend interface for the contract):

* Inputs and outputs live in secure buffers (``REGISTRY``, owner ``backend:<model>``),
  allocated once and bound with IOBinding, so ONNX Runtime reads the guest's pixels from and
  writes its results straight into memory we can wipe. ``run()`` returns views of the output
  buffers; ``zeroise()`` overwrites inputs and outputs.
* The CPU memory arena is off (``enable_cpu_mem_arena = False``): with it on, ONNX Runtime
  keeps every intermediate activation of the last run in its own pool, readable long after
  ``run()``. With it off, intermediates are ordinary glibc allocations freed at the end of each
  run (memory patterns stay on: the planned block is also allocated per run and freed at its
  end; it measured 15-30 % faster than one allocation per tensor). Freed memory keeps its
  contents unless the process runs under the malloc environment
  (``appliance.secure.malloc_env``: ``MALLOC_PERTURB_`` overwrites freed chunks, tcache off so
  every size is overwritten, ``MALLOC_MMAP_THRESHOLD_`` keeps large blocks on mmap, whose
  pages go back to the kernel on free; without it glibc raises the threshold after the first
  large free and later activations stay in the heap). The service runs under that
  environment; ``tests/test_onnxruntime_backend.py`` scans a live process's memory to prove
  no activation survives a run, and that the arena, when on, keeps them.
* The model file is read once and the same bytes are hashed and loaded (no time-of-check /
  time-of-use gap); a mismatch with the manifest is refused with ``ModelIntegrityError``.
* Nothing is written to disk: no optimised-model file, no profiling output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from appliance.models.backend import BackendError, TensorSpec
from appliance.models.feeds import copy_feeds
from appliance.models.integrity import read_verified
from appliance.secure.buffers import REGISTRY, SecureBuffer

_ORT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


def default_threads(cpus: int | None = None) -> int:
    """Intra-op threads for a small board: leave a core for the web server and decoding.

    2 cores: both (a single-threaded model would double the guest's wait). 3-5 cores: all but
    one. More: 4, because these small models gain little beyond that and the effects and the
    web server need the rest.
    """
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    if cpus <= 2:
        return max(1, cpus)
    return min(4, cpus - 1)


def session_options(threads: int) -> ort.SessionOptions:
    """The options every session gets; a function of its own so tests can inspect them."""
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False  # the arena would keep activations after run()
    options.enable_mem_pattern = True  # one planned block per run, freed at its end
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads if threads > 0 else default_threads()
    options.inter_op_num_threads = 1
    options.enable_profiling = False
    options.log_severity_level = 3  # errors only: warnings name nodes, never data, but are noise
    # Worker threads spin between the many small layers (without it they sleep and wake per
    # layer: 1.2-1.75x LiteRT at 2 threads instead of 0.65-0.95x), but only for 500 us after
    # their last work: unbounded, each run left a core spinning for about 50 ms, taken from
    # decoding and the web server of a small board (BENCHMARKS.md, Models).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.intra_op.spin_duration_us", "500")
    return options


def _static_shape(model: str, kind: str, name: str, shape: list[Any],
                  dynamic: bool = False) -> tuple[int, ...]:
    """A fixed shape; a free batch dimension becomes 1. With ``dynamic`` (the model has
    profiles), a named dimension is -1, resolved from the feeds at each run; otherwise any
    other free dimension is refused."""
    dims: list[int] = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
        elif dynamic and isinstance(dim, str) and dim:
            dims.append(-1)
        elif axis == 0:
            dims.append(1)
        else:
            raise BackendError(
                f"model {model}: {kind} {name!r} has a free dimension {dim!r} at axis {axis}; "
                "buffers are allocated once, so every dimension but the batch must be fixed "
                "(or named, with profiles in the manifest)")
    return tuple(dims)


def resolve_shapes(model: str, symbols: Mapping[str, tuple[str | None, ...]],
                   specs: list[TensorSpec], feeds: Mapping[str, Any],
                   profiles: tuple[Mapping[str, Any], ...]) -> dict[str, int]:
    """The value of every named dimension, read from the feeds and checked against the
    profiles (within [min, max] of at least one); one wording for every backend."""
    values: dict[str, int] = {}
    for spec in specs:
        if spec.name not in feeds:
            continue
        shape = tuple(np.shape(feeds[spec.name]))
        if len(shape) != len(spec.shape):
            raise BackendError(f"model {model}: input {spec.name!r} has shape {shape}, "
                               f"expected {len(spec.shape)} dimensions")
        for axis, symbol in enumerate(symbols.get(spec.name, ())):
            if symbol is None:
                continue
            if values.setdefault(symbol, shape[axis]) != shape[axis]:
                raise BackendError(f"model {model}: dimension {symbol!r} is {values[symbol]} "
                                   f"in one input and {shape[axis]} in {spec.name!r}")
    if profiles and not any(all(p[s][0] <= v <= p[s][2] for s, v in values.items() if s in p)
                            for p in profiles):
        bounds = "; ".join(", ".join(f"{s} {p[s][0]}..{p[s][2]}" for s in sorted(p))
                           for p in profiles)
        raise BackendError(f"model {model}: dimensions {values} are outside every profile "
                           f"({bounds})")
    return values


class OnnxRuntimeBackend:
    """One ONNX model on the CPU, with buffers it owns and can wipe."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, sha256: str, model: str, threads: int = 0,
                 profiles: tuple[Mapping[str, Any], ...] = ()) -> None:
        self.model = model
        self.path = Path(path)
        self.owner = f"backend:{model}"
        data = read_verified(self.path, sha256, what=f"model {model}")
        self.options = session_options(threads)
        try:
            self._session = ort.InferenceSession(data, sess_options=self.options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for a bad graph
            raise BackendError(f"model {model} ({self.path}) cannot be loaded by ONNX Runtime: "
                               f"{exc}") from None
        finally:
            del data
        self.profiles = tuple(profiles)
        args = [*self._session.get_inputs(), *self._session.get_outputs()]
        # Named dimensions (``src_h``) of a graph with dynamic shapes, per tensor and axis.
        self._symbols = {arg.name: tuple(d if isinstance(d, str) and d else None
                                         for d in arg.shape) for arg in args}
        self.dynamic = any(any(d is not None for d in dims) for dims in self._symbols.values())
        self._inputs = [self._spec(arg, "input") for arg in self._session.get_inputs()]
        self._outputs = [self._spec(arg, "output") for arg in self._session.get_outputs()]
        self._bound: dict[str, int] | None = None  # symbol values the buffers are sized for
        self._buffers: dict[str, SecureBuffer] = {}
        self._views: dict[str, npt.NDArray[Any]] = {}
        self._binding: Any = None
        self._closed = False
        if not self.dynamic:
            self._allocate_and_bind()

    # -- the Backend interface -------------------------------------------------------------

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def input_buffer(self, name: str) -> npt.NDArray[Any]:
        """The input buffer itself, for pre-processing that writes into it directly.

        Passing this very view to ``run()`` skips the copy.
        """
        self._ensure_ready()
        if name not in {spec.name for spec in self._inputs}:
            raise BackendError(f"model {self.model} has no input {name!r}; inputs: "
                               + ", ".join(spec.name for spec in self._inputs))
        return self._views[name]

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        inputs = self._inputs
        if self.dynamic:
            values = resolve_shapes(self.model, self._symbols, self._inputs, feeds,
                                    self.profiles)
            if values != self._bound or not self._buffers:
                self._allocate_and_bind(values)
            inputs = [self._resolved(spec, values) for spec in self._inputs]
        self._ensure_ready()
        copy_feeds(self.model, inputs, self._views, feeds)
        try:
            self._session.run_with_iobinding(self._binding)
        except Exception as exc:
            raise BackendError(f"model {self.model}: ONNX Runtime failed to run: {exc}") \
                from None
        return {spec.name: self._views[spec.name] for spec in self._outputs}

    def zeroise(self) -> None:
        """Overwrite every input and output buffer; the backend stays usable."""
        for buffer in self._buffers.values():
            buffer.wipe()

    def close(self) -> None:
        if self._closed:
            return
        for buffer in self._buffers.values():
            buffer.release()
        self._buffers.clear()
        self._views.clear()
        self._binding = None
        self._session = None
        self._closed = True

    # -- internals ---------------------------------------------------------------------------

    def _spec(self, arg: Any, kind: str) -> TensorSpec:
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is None:
            raise BackendError(f"model {self.model}: {kind} {arg.name!r} has type {arg.type}, "
                               "which this backend does not support")
        return TensorSpec(arg.name, _static_shape(self.model, kind, arg.name, arg.shape,
                                                  self.dynamic), dtype)

    def _resolved(self, spec: TensorSpec, values: Mapping[str, int]) -> TensorSpec:
        symbols = self._symbols.get(spec.name, ())
        shape = []
        for axis, dim in enumerate(spec.shape):
            symbol = symbols[axis] if axis < len(symbols) else None
            if dim >= 0:
                shape.append(dim)
            elif symbol is not None and symbol in values:
                shape.append(values[symbol])
            else:
                raise BackendError(f"model {self.model}: the size of {spec.name!r}'s "
                                   f"dimension {symbol!r} cannot be derived from the inputs")
        return TensorSpec(spec.name, tuple(shape), spec.dtype)

    def _allocate_and_bind(self, values: Mapping[str, int] | None = None) -> None:
        """Secure buffers for every input and output, bound once so ORT uses them directly
        (for dynamic shapes: again whenever the feeds' named dimensions change)."""
        for buffer in self._buffers.values():
            buffer.release()
        self._buffers.clear()
        self._views.clear()
        if self.dynamic:
            values = dict(values if values is not None else self._bound or {})
            self._bound = values
        specs = [self._resolved(spec, values or {}) for spec in [*self._inputs, *self._outputs]]
        binding = self._session.io_binding()
        for spec in specs:
            buffer, view = REGISTRY.array(spec.shape, spec.dtype, owner=self.owner,
                                          label=f"{self.model}:{spec.name}")
            self._buffers[spec.name] = buffer
            self._views[spec.name] = view
        n_inputs = len(self._inputs)
        for spec in specs[:n_inputs]:
            binding.bind_input(spec.name, "cpu", 0, spec.dtype.type, list(spec.shape),
                               self._views[spec.name].ctypes.data)
        for spec in specs[n_inputs:]:
            binding.bind_output(spec.name, "cpu", 0, spec.dtype.type, list(spec.shape),
                                self._views[spec.name].ctypes.data)
        self._binding = binding

    def _ensure_ready(self) -> None:
        if self._closed:
            raise BackendError(f"model {self.model}: the backend was closed")
        # A purge (REGISTRY.release_all) wipes and unmaps our buffers too; get fresh ones.
        if any(buffer.released for buffer in self._buffers.values()):
            self._allocate_and_bind()
        if self.dynamic and not self._buffers:
            raise BackendError(f"model {self.model} has dynamic shapes: its buffers exist "
                               "only once run() has seen the feeds")

    def __repr__(self) -> str:
        return f"OnnxRuntimeBackend({self.model!r}, {self.path})"

