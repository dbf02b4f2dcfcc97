"""TensorRT 10 on a Jetson: one engine, buffers allocated once, every byte of it wipeable.

A thin layer over the TensorRT 10 named-tensor API and pycuda, behind the same ``Backend``
interface as ONNX Runtime:

* per I/O tensor, a page-locked (pinned: never swapped) host buffer and a device buffer,
  allocated once when the engine is opened, addresses registered once with
  ``set_tensor_address``;
* the activation (scratch) memory is ours: the context is created with
  ``ExecutionContextAllocationStrategy.USER_MANAGED`` and given a ``mem_alloc`` block of
  ``engine.device_memory_size_v2`` bytes (cudaMalloc returns 256-byte aligned memory, which
  TensorRT requires; checked) through ``set_device_memory``. Without that, TensorRT would own
  memory holding the guest's activations that we could not clear;
* ``run()``: feeds into the pinned inputs, ``memcpy_htod_async``, ``execute_async_v3``,
  ``memcpy_dtoh_async``, synchronise, return views of the pinned outputs;
* ``zeroise()``: synchronise first (nothing may be in flight into a buffer being cleared), then
  ``memset_d8`` every device buffer and the activation memory, zero the pinned host buffers and
  synchronise again;
* the engine file is read once, hashed and those same bytes deserialised; a hash that differs
  from the sidecar written when the engine was built and validated is refused.

Pinned host buffers come from pycuda rather than the secure-buffer registry: CUDA must pin them
itself for asynchronous copies, and memfd_secret pages cannot be registered with the driver.
They are locked in RAM (never swapped) and wiped by ``zeroise()``.

Not exercised on a GPU in CI: tests/fakes/ stands in for TensorRT and pycuda there. On a machine
with a GPU and pycuda, tests/gpu/ runs this class against the real CUDA driver with only the
engine stood in, reading device memory back to prove the wipes (docs/engines.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.models.backend import BackendError, TensorSpec
from appliance.models.feeds import copy_feeds
from appliance.models.integrity import read_verified
from appliance.models.tensorrt_support import CudaContext, import_tensorrt, make_logger

ACTIVATION_ALIGNMENT = 256  # TensorRT's requirement for set_device_memory


@dataclass
class _Binding:
    spec: TensorSpec
    is_input: bool
    host: npt.NDArray[Any]  # pinned
    device: Any  # pycuda DeviceAllocation


class TensorRTBackend:
    """One serialized TensorRT engine, run on one CUDA stream."""

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, sha256: str, model: str) -> None:
        self.model = model
        self.path = Path(engine_path)
        trt, cuda = import_tensorrt()
        self._trt, self._cuda = trt, cuda
        data = read_verified(self.path, sha256, what=f"TensorRT engine for {model}")
        self._context_owner = CudaContext.shared(cuda)
        self._logger = make_logger(trt)
        self._bindings: list[_Binding] = []
        self._scratch: Any = None
        self.activation_bytes = 0
        self._closed = False
        with self._context_owner.current():
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(data)
            del data
            if self._engine is None:
                detail = "; ".join(self._logger.errors[-2:]) or "no detail from TensorRT"
                raise BackendError(
                    f"TensorRT engine {self.path} for {model} cannot be deserialised ({detail}). "
                    "Engines only run on the TensorRT version and GPU they were built for: "
                    "rebuild with `ephemera build --force`")
            self._context = self._engine.create_execution_context(
                trt.ExecutionContextAllocationStrategy.USER_MANAGED)
            if self._context is None:
                raise BackendError(f"TensorRT could not create an execution context for {model}")
            try:
                self._stream = cuda.Stream()
                self._allocate()
            except cuda.MemoryError:
                self._free()
                raise BackendError(
                    f"out of GPU memory while opening the engine for {model}; close other GPU "
                    "programs or reboot the device") from None
            except BackendError:
                self._free()
                raise

    # -- the Backend interface -------------------------------------------------------------

    @property
    def inputs(self) -> list[TensorSpec]:
        return [b.spec for b in self._bindings if b.is_input]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [b.spec for b in self._bindings if not b.is_input]

    def input_buffer(self, name: str) -> npt.NDArray[Any]:
        """The pinned input buffer itself; passing it to ``run()`` skips the copy."""
        self._check_open()
        for binding in self._bindings:
            if binding.is_input and binding.spec.name == name:
                return binding.host
        raise BackendError(f"model {self.model} has no input {name!r}; inputs: "
                           + ", ".join(spec.name for spec in self.inputs))

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        self._check_open()
        cuda = self._cuda
        copy_feeds(self.model, self.inputs,
                   {b.spec.name: b.host for b in self._bindings if b.is_input}, feeds)
        with self._context_owner.current():
            for binding in self._bindings:
                if binding.is_input:
                    cuda.memcpy_htod_async(binding.device, binding.host, self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                self._stream.synchronize()
                detail = "; ".join(self._logger.errors[-2:]) or "no detail from TensorRT"
                raise BackendError(f"model {self.model}: TensorRT failed to run ({detail})")
            for binding in self._bindings:
                if not binding.is_input:
                    cuda.memcpy_dtoh_async(binding.host, binding.device, self._stream)
            self._stream.synchronize()
        return {b.spec.name: b.host for b in self._bindings if not b.is_input}

    def zeroise(self) -> None:
        """Wipe device inputs, outputs and activations, then the pinned host buffers."""
        if self._closed:
            return
        cuda = self._cuda
        with self._context_owner.current():
            self._stream.synchronize()  # no copy or kernel may still be writing
            for binding in self._bindings:
                cuda.memset_d8_async(binding.device, 0, binding.spec.nbytes, self._stream)
            if self._scratch is not None and self.activation_bytes:
                cuda.memset_d8_async(self._scratch, 0, self.activation_bytes, self._stream)
            for binding in self._bindings:
                binding.host.fill(0)
            self._stream.synchronize()

    def close(self) -> None:
        if self._closed:
            return
        self.zeroise()
        with self._context_owner.current():
            self._free()
        self._context = None
        self._engine = None
        self._runtime = None
        self._closed = True

    # -- internals ---------------------------------------------------------------------------

    def _allocate(self) -> None:
        trt, cuda, engine = self._trt, self._cuda, self._engine
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = _static_shape(self.model, name, tuple(engine.get_tensor_shape(name)))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            spec = TensorSpec(name, shape, dtype)
            host = cuda.pagelocked_empty(shape, dtype)
            host.fill(0)
            device = cuda.mem_alloc(max(1, spec.nbytes))
            self._bindings.append(_Binding(spec, is_input, host, device))
            if is_input and not self._context.set_input_shape(name, shape):
                raise BackendError(f"model {self.model}: TensorRT refused shape {shape} for "
                                   f"input {name!r}")
            if not self._context.set_tensor_address(name, int(device)):
                raise BackendError(f"model {self.model}: TensorRT refused the address of "
                                   f"tensor {name!r}")
        self.activation_bytes = int(engine.device_memory_size_v2)
        self._scratch = cuda.mem_alloc(max(1, self.activation_bytes))
        address = int(self._scratch)
        if address % ACTIVATION_ALIGNMENT:
            raise BackendError(f"model {self.model}: activation memory at {address:#x} is not "
                               f"{ACTIVATION_ALIGNMENT}-byte aligned")
        self._context.set_device_memory(address, self.activation_bytes)
        # Start from zeros: cudaMalloc memory holds whatever the last user left there.
        self.zeroise()

    def _free(self) -> None:
        for binding in self._bindings:
            binding.device.free()
        if self._scratch is not None:
            self._scratch.free()
        self._bindings = []
        self._scratch = None

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"model {self.model}: the backend was closed")

    def __repr__(self) -> str:
        return f"TensorRTBackend({self.model!r}, {self.path})"


def _static_shape(model: str, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if any(dim <= 0 for dim in shape[1:]):
        raise BackendError(f"model {model}: tensor {name!r} has dynamic shape {shape}; engines "
                           "are built with fixed shapes (rebuild with `ephemera build --force`)")
    return tuple(1 if axis == 0 and dim <= 0 else dim for axis, dim in enumerate(shape))
