"""KernelTensorRT: a stand-in for the ``tensorrt`` module whose engine is one real CUDA kernel.

It is NOT TensorRT. It exists so that, on a machine with an NVIDIA GPU and pycuda but no
TensorRT, ``TensorRTBackend`` runs against the real CUDA driver: real ``cudaMalloc`` device
buffers, real page-locked host buffers, real asynchronous copies on a real stream, and real
``memset`` wipes, read back from the device to prove they happened. Only the engine is stood
in: its "serialized engine" is a small JSON description of its tensors, and executing it
launches a kernel (compiled by nvcc through pycuda) that reads the input through the address
registered with ``set_tensor_address``, writes ``2 * x + 1`` to the output, and copies the
input into the activation memory given with ``set_device_memory`` (the guest's data sits in a
real engine's activations the same way).

The kernel runs on the legacy default stream: every pycuda stream is a blocking stream, so the
kernel is ordered after the backend's input copies and before its output copies, as an engine
run on the backend's own stream would be.
"""

from __future__ import annotations

import json
import types
from typing import Any

import numpy as np

# The enums and logger base are the plain-Python ones of the CPU stand-in (no engine in them).
from tests.fakes.fake_tensorrt import (
    DataType,
    ExecutionContextAllocationStrategy,
    ILogger,
    TensorIOMode,
)

KERNEL = r"""
extern "C" __global__ void scale_and_keep(const float *x, float *y, float *scratch, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        scratch[i] = x[i];          /* the activations hold the guest's data */
        y[i] = 2.0f * x[i] + 1.0f;
    }
}
"""
THREADS = 256


def nptype(dtype: DataType) -> type:
    return np.float32


def engine_bytes(shape: tuple[int, ...], activation_bytes: int) -> bytes:
    """A stand-in serialized engine: input ``x`` and output ``y`` of ``shape`` (float32)."""
    return json.dumps({"shape": list(shape), "activation_bytes": activation_bytes}).encode()


class ExecutionContext:
    def __init__(self, engine: Engine, strategy: ExecutionContextAllocationStrategy) -> None:
        self.engine = engine
        self.strategy = strategy
        self.addresses: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.device_memory: tuple[int, int] | None = None
        self.runs = 0

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return tuple(shape) == self.engine.shape

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def set_device_memory(self, address: int, size: int) -> None:
        self.device_memory = (int(address), int(size))

    def execute_async_v3(self, stream_handle: int) -> bool:
        if self.device_memory is None or self.strategy is not (
                ExecutionContextAllocationStrategy.USER_MANAGED):
            return False
        scratch, size = self.device_memory
        count = int(np.prod(self.engine.shape))
        if size < count * 4:
            return False
        self.engine.kernel(np.uintp(self.addresses["x"]), np.uintp(self.addresses["y"]),
                           np.uintp(scratch), np.int32(count), block=(THREADS, 1, 1),
                           grid=((count + THREADS - 1) // THREADS, 1))
        self.runs += 1
        return True


class Engine:
    def __init__(self, description: dict[str, Any], kernel: Any) -> None:
        self.shape = tuple(int(d) for d in description["shape"])
        self.device_memory_size_v2 = int(description["activation_bytes"])
        self.kernel = kernel
        self.contexts: list[ExecutionContext] = []
        self.num_io_tensors = 2

    def get_tensor_name(self, index: int) -> str:
        return ("x", "y")[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name == "x" else TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shape

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType.FLOAT

    def create_execution_context(self, strategy: ExecutionContextAllocationStrategy) -> Any:
        context = ExecutionContext(self, strategy)
        self.contexts.append(context)
        return context


class Runtime:
    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
        from pycuda.compiler import SourceModule

        try:
            description = json.loads(bytes(data))
        except ValueError:
            return None
        module = SourceModule(KERNEL, no_extern_c=True)
        engine = Engine(description, module.get_function("scale_and_keep"))
        STATE.engines.append(engine)
        return engine


class _State:
    def __init__(self) -> None:
        self.engines: list[Engine] = []


STATE = _State()


def module() -> types.ModuleType:
    """The stand-in as a module, for a test to put where ``import tensorrt`` finds it."""
    standin = types.ModuleType("tensorrt")
    standin.__version__ = "10.0.0-kernel-standin"  # type: ignore[attr-defined]
    for name, value in {"Runtime": Runtime, "ILogger": ILogger, "TensorIOMode": TensorIOMode,
                        "ExecutionContextAllocationStrategy": ExecutionContextAllocationStrategy,
                        "DataType": DataType, "nptype": nptype, "STATE": STATE}.items():
        setattr(standin, name, value)
    return standin
