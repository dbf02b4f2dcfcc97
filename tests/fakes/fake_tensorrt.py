"""FakeTensorRT: a stand-in for the ``tensorrt`` module. It is NOT TensorRT and proves nothing about
TensorRT's numerics, performance or operator support.

Why it exists: the machines that run the tests have neither an NVIDIA GPU nor TensorRT, yet the
code around TensorRT (engine cache keys, rebuild decisions, the timing cache, the sidecar, the
validation gate, USER_MANAGED activation memory, zeroise) must be tested. This fake implements
only the subset of the TensorRT 10 Python API that ``appliance.models.tensorrt_*`` calls:

* ``Builder``/``OnnxParser``/``IBuilderConfig``: parsing records the ONNX graph (and fails for
  operators listed in ``unsupported_ops``); building returns a "serialized engine" that is a
  small JSON header (flags, device type, DLA core, profiles) followed by the ONNX bytes;
  timing-cache entries are one per node, so reuse is observable (``last_build``);
* ``Runtime``/``ICudaEngine``/``IExecutionContext``: executing an engine runs its ONNX bytes
  through ONNX Runtime (FP16 engines round their outputs to float16), reading inputs from and
  writing outputs to the fake device memory of ``FakeCudaDriver``, and scribbling over the
  activation memory the caller supplied, as a real engine's activations would.

Knobs for tests: ``output_error`` (added to every output, to make an engine fail validation),
``build_failure`` ("oom" or any other text), ``unsupported_ops``, ``fast_fp16``, ``dla_cores``.
"""

from __future__ import annotations

import enum
import json
import struct
import sys
import types
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from tests.fakes.fake_pycuda import ALIGNMENT, FakeCudaDriver

MAGIC = b"FAKETRT1"


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8,
       DataType.INT64: np.int64}
_FROM_ONNX = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF,
              onnx.TensorProto.INT32: DataType.INT32, onnx.TensorProto.INT64: DataType.INT64,
              onnx.TensorProto.UINT8: DataType.UINT8, onnx.TensorProto.INT8: DataType.INT8,
              onnx.TensorProto.BOOL: DataType.BOOL}


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class ExecutionContextAllocationStrategy(enum.Enum):
    STATIC = 0
    ON_PROFILE_CHANGE = 1
    USER_MANAGED = 2


class BuilderFlag(enum.Enum):
    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    TF32 = 7


class DeviceType(enum.Enum):
    GPU = 0
    DLA = 1


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class ErrorCode(enum.Enum):
    SUCCESS = 0
    INTERNAL_ERROR = 1
    INVALID_VALUE = 2
    INVALID_GRAPH = 3
    INVALID_NODE = 4
    UNSUPPORTED_GRAPH = 5
    UNSUPPORTED_NODE = 6


class _Severity(enum.Enum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    Severity = _Severity

    def __init__(self) -> None:
        pass

    def log(self, severity: _Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    def __init__(self, min_severity: _Severity = _Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: _Severity, msg: str) -> None:
        pass


class _HostMemory:
    """IHostMemory: supports the buffer protocol, like the real one."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.nbytes = len(data)

    def __buffer__(self, flags: int) -> memoryview:
        return memoryview(self._data)

    def tobytes(self) -> bytes:
        return self._data

    def __bytes__(self) -> bytes:
        return self._data


class FakeTimingCache:
    def __init__(self, fake: FakeTensorRT, data: bytes) -> None:
        self.entries: dict[str, float] = {}
        if data:
            header = json.loads(bytes(data).decode())
            if header.get("version") != fake.__version__:
                raise RuntimeError("timing cache from another TensorRT version")
            self.entries = dict(header["entries"])
        self.loaded = set(self.entries)
        self._fake = fake

    def serialize(self) -> _HostMemory:
        return _HostMemory(json.dumps({"version": self._fake.__version__,
                                       "entries": self.entries}).encode())


class _ITensor:
    def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype


class FakeNetwork:
    def __init__(self) -> None:
        self.onnx_bytes = b""
        self.nodes: list[tuple[str, str]] = []
        self.inputs: list[_ITensor] = []

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> _ITensor:
        return self.inputs[index]


class _ParserError:
    def __init__(self, code: ErrorCode, desc: str, node_name: str, node_operator: str) -> None:
        self._code, self._desc, self._name, self._op = code, desc, node_name, node_operator

    def code(self) -> ErrorCode:
        return self._code

    def desc(self) -> str:
        return self._desc

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op


class OnnxParser:
    def __init__(self, network: FakeNetwork, logger: ILogger) -> None:
        self._network = network
        self._errors: list[_ParserError] = []

    def parse(self, model: Any) -> bool:
        data = bytes(model)
        graph = onnx.load_from_string(data).graph
        initialisers = {init.name for init in graph.initializer}
        for node in graph.node:
            if node.op_type in FAKE.unsupported_ops:
                self._errors.append(_ParserError(
                    ErrorCode.UNSUPPORTED_NODE,
                    f"No importer registered for op: {node.op_type}", node.name or node.output[0],
                    node.op_type))
        self._network.onnx_bytes = data
        self._network.nodes = [(n.op_type, n.output[0]) for n in graph.node]
        for value in graph.input:
            if value.name in initialisers:
                continue
            dims = tuple(d.dim_value if d.dim_value > 0 else -1
                         for d in value.type.tensor_type.shape.dim)
            self._network.inputs.append(
                _ITensor(value.name, dims, _FROM_ONNX[value.type.tensor_type.elem_type]))
        return not self._errors

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> _ParserError:
        return self._errors[index]


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


class FakeBuilderConfig:
    def __init__(self, fake: FakeTensorRT) -> None:
        self._fake = fake
        self.flags: set[BuilderFlag] = {BuilderFlag.TF32}  # TF32 is on by default in TensorRT
        self.pools: dict[MemoryPoolType, int] = {}
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.profiles: list[FakeProfile] = []
        self.timing_cache: FakeTimingCache | None = None
        self.ignore_mismatch: bool | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pools[pool] = size

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags.discard(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        return flag in self.flags

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: Any) -> FakeTimingCache:
        return FakeTimingCache(self._fake, bytes(data))

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        self.ignore_mismatch = ignore_mismatch
        return True

    def get_timing_cache(self) -> FakeTimingCache | None:
        return self.timing_cache


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self._logger = logger
        FAKE.builders += 1

    @property
    def platform_has_fast_fp16(self) -> bool:
        return FAKE.fast_fp16

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - TensorRT's spelling
        return FAKE.dla_cores

    def create_network(self, flags: int = 0) -> FakeNetwork:
        return FakeNetwork()

    def create_builder_config(self) -> FakeBuilderConfig:
        return FakeBuilderConfig(FAKE)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork,
                                 config: FakeBuilderConfig) -> _HostMemory | None:
        FAKE.last_config = config
        FAKE.builds += 1
        if FAKE.build_failure == "oom":
            self._logger.log(_Severity.ERROR, "[virtualMemoryBuffer.cpp::resizePhysical::140] "
                             "Error Code 2: OutOfMemory (Requested size was 1073741824 bytes.)")
            return None
        if FAKE.build_failure:
            self._logger.log(_Severity.ERROR, FAKE.build_failure)
            return None
        fp16 = BuilderFlag.FP16 in config.flags
        hits = new = 0
        if config.timing_cache is not None:
            for op, name in network.nodes:
                key = f"{op}:{name}:{'fp16' if fp16 else 'fp32'}"
                if key in config.timing_cache.entries:
                    hits += 1
                else:
                    config.timing_cache.entries[key] = 0.01
                    new += 1
        FAKE.last_build = {"hits": hits, "new": new}
        header = {
            "fp16": fp16,
            "tf32": BuilderFlag.TF32 in config.flags,
            "gpu_fallback": BuilderFlag.GPU_FALLBACK in config.flags,
            "device": config.default_device_type.name,
            "dla_core": config.DLA_core,
            "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
            "profiles": [{k: list(map(list, v)) for k, v in p.shapes.items()}
                         for p in config.profiles],
            "version": FAKE.__version__,
        }
        blob = json.dumps(header).encode()
        return _HostMemory(MAGIC + struct.pack("<I", len(blob)) + blob + network.onnx_bytes)


def fake_engine_bytes(onnx_bytes: bytes, fp16: bool = False, version: str = "") -> bytes:
    """A serialized fake engine, as the fake builder would make it (test helper)."""
    header = {"fp16": fp16, "tf32": False, "gpu_fallback": False, "device": "GPU",
              "dla_core": -1, "workspace": None, "profiles": [],
              "version": version or FAKE.__version__}
    blob = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(blob)) + blob + onnx_bytes


def parse_engine(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Header and ONNX bytes of a fake engine (test helper)."""
    if not data.startswith(MAGIC):
        raise ValueError("not a fake engine")
    (length,) = struct.unpack("<I", data[8:12])
    return json.loads(data[12:12 + length]), data[12 + length:]


class FakeEngine:
    def __init__(self, header: dict[str, Any], onnx_bytes: bytes) -> None:
        self.header = header
        self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self._io: list[tuple[str, TensorIOMode, tuple[int, ...], DataType]] = []
        model = onnx.load_from_string(onnx_bytes)
        for value, mode in [*((v, TensorIOMode.INPUT) for v in model.graph.input
                              if v.name not in {i.name for i in model.graph.initializer}),
                            *((v, TensorIOMode.OUTPUT) for v in model.graph.output)]:
            dims = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)
            self._io.append((value.name, mode, dims, _FROM_ONNX[value.type.tensor_type.elem_type]))
        # Activation memory: deliberately not a multiple of 256, like real engines' sizes.
        self.device_memory_size_v2 = 4096 + 100
        self.contexts: list[FakeExecutionContext] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index][0]

    def _find(self, name: str) -> tuple[str, TensorIOMode, tuple[int, ...], DataType]:
        for item in self._io:
            if item[0] == name:
                return item
        raise KeyError(name)

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._find(name)[1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._find(name)[2]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._find(name)[3]

    def create_execution_context(
            self, strategy: ExecutionContextAllocationStrategy =
            ExecutionContextAllocationStrategy.STATIC) -> FakeExecutionContext:
        context = FakeExecutionContext(self, strategy)
        self.contexts.append(context)
        return context


class FakeExecutionContext:
    def __init__(self, engine: FakeEngine, strategy: ExecutionContextAllocationStrategy) -> None:
        self.engine = engine
        self.strategy = strategy
        self.addresses: dict[str, int] = {}
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.device_memory: tuple[int, int] | None = None
        self.runs = 0

    def set_input_shape(self, name: str, shape: Any) -> bool:
        self.input_shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def set_device_memory(self, address: int, size: int) -> None:
        if int(address) % ALIGNMENT:
            raise RuntimeError("device memory must be 256-byte aligned")
        if size < self.engine.device_memory_size_v2:
            raise RuntimeError("device memory smaller than device_memory_size_v2")
        self.device_memory = (int(address), int(size))

    def execute_async_v3(self, stream_handle: int) -> bool:
        import ctypes

        if self.strategy is ExecutionContextAllocationStrategy.USER_MANAGED and \
                self.device_memory is None:
            return False
        names = [n for n, *_ in self.engine._io]
        if set(names) - set(self.addresses):
            return False
        stream = FAKE.cuda.streams[stream_handle]
        fp16 = self.engine.header["fp16"]

        def execute() -> None:
            feeds = {}
            for name, mode, shape, dtype in self.engine._io:
                if mode is TensorIOMode.INPUT:
                    n = int(np.prod(shape)) * np.dtype(_NP[dtype]).itemsize
                    raw = (ctypes.c_ubyte * n).from_address(self.addresses[name])
                    feeds[name] = np.frombuffer(raw, _NP[dtype]).reshape(shape).copy()
            outputs = self.engine._session.run(None, feeds)
            for (name, _mode, _shape, dtype), value in zip(
                    [io for io in self.engine._io if io[1] is TensorIOMode.OUTPUT], outputs,
                    strict=True):
                value = np.asarray(value, _NP[dtype])
                if fp16:
                    value = value.astype(np.float16).astype(_NP[dtype])
                value = value + np.asarray(FAKE.output_error, _NP[dtype])
                ctypes.memmove(self.addresses[name], value.ctypes.data, value.nbytes)
            if self.device_memory is not None:  # activations hold data derived from the input
                first = np.concatenate([f.reshape(-1).view(np.uint8) for f in feeds.values()])
                address, size = self.device_memory
                n = min(size, first.nbytes)
                ctypes.memmove(address, first.ctypes.data, n)
            self.runs += 1

        stream.enqueue(execute)
        FAKE.cuda.events.append(("execute_async_v3", stream_handle))
        return True


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        self._logger = logger

    def deserialize_cuda_engine(self, data: Any) -> FakeEngine | None:
        raw = bytes(data)
        FAKE.deserialized += 1
        try:
            header, onnx_bytes = parse_engine(raw)
        except ValueError:
            self._logger.log(_Severity.ERROR, "Serialization assertion failed: magic tag")
            return None
        if header["version"] != FAKE.__version__:
            self._logger.log(_Severity.ERROR, "engine plan from another TensorRT version")
            return None
        engine = FakeEngine(header, onnx_bytes)
        FAKE.engines.append(engine)
        return engine


def nptype(dtype: DataType) -> type:
    return _NP[dtype]


class FakeTensorRT(types.ModuleType):
    """The fake ``tensorrt`` module. Attributes mirror the subset of TensorRT 10 we call."""

    DataType = DataType
    TensorIOMode = TensorIOMode
    ExecutionContextAllocationStrategy = ExecutionContextAllocationStrategy
    BuilderFlag = BuilderFlag
    DeviceType = DeviceType
    MemoryPoolType = MemoryPoolType
    ErrorCode = ErrorCode
    ILogger = ILogger
    Logger = Logger
    Builder = Builder
    OnnxParser = OnnxParser
    Runtime = Runtime
    nptype = staticmethod(nptype)

    def __init__(self, cuda: FakeCudaDriver, version: str = "10.3.0.30") -> None:
        super().__init__("tensorrt", "FakeTensorRT: a test stand-in, not TensorRT")
        self.__version__ = version
        self.cuda = cuda
        self.output_error = 0.0
        self.build_failure = ""
        self.unsupported_ops: set[str] = set()
        self.fast_fp16 = True
        self.dla_cores = 2
        self.builders = 0
        self.builds = 0
        self.engines: list[FakeEngine] = []
        self.deserialized = 0
        self.last_build: dict[str, int] = {}
        self.last_config: FakeBuilderConfig | None = None


FAKE: FakeTensorRT  # the installed instance; set by install_fakes


def install_fakes(monkeypatch: Any, capability: tuple[int, int] = (8, 7),
                  version: str = "10.3.0.30") -> FakeTensorRT:
    """Put FakeTensorRT and the fake pycuda driver in sys.modules for one test."""
    global FAKE
    cuda = FakeCudaDriver(capability=capability)
    FAKE = FakeTensorRT(cuda, version=version)
    package = types.ModuleType("pycuda")
    package.driver = cuda  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", FAKE)
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return FAKE
