"""Read a TFLite flatbuffer into a small, plain graph: tensors, constants and operators.

Why our own reader: the converter must not depend on TensorFlow, and it must see exactly what the
file says (op codes, options, sparse and fp16 constants) so every unsupported detail fails loudly
instead of being silently approximated. Only the ``tflite`` flatbuffer bindings are used.

``fold_constants`` then evaluates the weight-decoding ops (DENSIFY: sparse to dense, DEQUANTIZE:
fp16 to fp32) once, so the converter only ever sees dense float32 weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import tflite

from appliance.models.errors import ConversionError

_BUILTIN_NAMES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_OPTION_NAMES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}

# TFLite TensorType -> numpy dtype (the types a float model can carry).
_DTYPES: dict[int, np.dtype[Any]] = {
    tflite.TensorType.FLOAT32: np.dtype(np.float32),
    tflite.TensorType.FLOAT16: np.dtype(np.float16),
    tflite.TensorType.INT32: np.dtype(np.int32),
    tflite.TensorType.INT64: np.dtype(np.int64),
    tflite.TensorType.UINT8: np.dtype(np.uint8),
    tflite.TensorType.INT8: np.dtype(np.int8),
    tflite.TensorType.INT16: np.dtype(np.int16),
}


@dataclass
class Tensor:
    """One tensor of the graph; ``data`` is set for constants (weights, shapes, paddings)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    data: npt.NDArray[Any] | None = None
    sparse: Any = None  # tflite.SparsityParameters when the constant is stored sparse


@dataclass
class Operator:
    """One operator: its op name (builtin name, or the custom code), wiring and options."""

    index: int
    op: str
    inputs: list[int]  # tensor indices; -1 marks an omitted optional input
    outputs: list[int]
    options: Any = None  # the builtin options table (e.g. tflite.Conv2DOptions), if any
    custom_options: bytes = b""
    is_custom: bool = False


@dataclass
class Graph:
    """The main subgraph of a model, in TFLite's own (NHWC) terms."""

    model: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    folded: dict[str, int] = field(default_factory=dict)  # op name -> how many were folded


def _tensor_data(model: Any, raw: bytes, t: Any, dtype: np.dtype[Any]) -> npt.NDArray[Any] | None:
    buf = model.Buffers(t.Buffer())
    if buf is None:
        return None
    if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
        blob = raw[buf.Offset(): buf.Offset() + buf.Size()]
    elif buf.DataLength() > 0:
        blob = buf.DataAsNumpy().tobytes()
    else:
        return None
    return np.frombuffer(blob, dtype=dtype).copy()


def _options(op: Any) -> Any:
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return None
    table = op.BuiltinOptions()
    cls = getattr(tflite, _OPTION_NAMES[kind])
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    return obj


def read_tflite(raw: bytes, model_name: str) -> Graph:
    """Parse the flatbuffer's first subgraph; raises ConversionError on what we cannot read."""
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        n_sub = model.SubgraphsLength()
    except Exception as exc:  # the flatbuffer library raises bare errors on garbage
        raise ConversionError(f"model {model_name}: not a TFLite flatbuffer ({exc})") from exc
    if n_sub != 1:
        raise ConversionError(f"model {model_name}: {n_sub} subgraphs; only single-subgraph "
                              "models are supported")
    g = model.Subgraphs(0)
    tensors: list[Tensor] = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        if t.Type() not in _DTYPES:
            raise ConversionError(f"model {model_name}: tensor #{i} has unsupported TFLite type "
                                  f"{t.Type()}")
        dtype = _DTYPES[t.Type()]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = _tensor_data(model, raw, t, dtype)
        sparse = t.Sparsity()
        if data is not None and sparse is None:
            data = data.reshape(shape)
        tensors.append(Tensor(i, t.Name().decode(), shape, dtype, data, sparse))
    operators: list[Operator] = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        is_custom = builtin == tflite.BuiltinOperator.CUSTOM
        name = code.CustomCode().decode() if is_custom else _BUILTIN_NAMES.get(
            builtin, f"BUILTIN_{builtin}")
        custom = op.CustomOptionsAsNumpy().tobytes() if op.CustomOptionsLength() else b""
        operators.append(Operator(
            i, name, [int(x) for x in op.InputsAsNumpy()], [int(x) for x in op.OutputsAsNumpy()],
            _options(op), custom, is_custom))
    return Graph(model_name, tensors, operators,
                 [int(x) for x in g.InputsAsNumpy()], [int(x) for x in g.OutputsAsNumpy()])


def densify(values: npt.NDArray[Any], shape: tuple[int, ...], sparsity: Any) -> npt.NDArray[Any]:
    """Expand TFLite's sparse storage (CSR levels, optional blocks) to a dense array.

    Mirrors TFLite's FormatConverter: walk the traversal order level by level; a DENSE level
    enumerates ``dense_size`` positions, a SPARSE_CSR level the indices between two segments.
    """
    rank = len(shape)
    order = [int(x) for x in sparsity.TraversalOrderAsNumpy()]
    block_map = ([int(x) for x in sparsity.BlockMapAsNumpy()]
                 if sparsity.BlockMapLength() else [])
    levels: list[tuple[str, int, npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]] = []
    for level in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == tflite.DimensionType.DENSE:
            levels.append(("dense", meta.DenseSize(), None, None))
        else:
            levels.append(("sparse", 0, _index_vector(meta.ArraySegments(),
                                                     meta.ArraySegmentsType()),
                           _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())))
    block_size = [levels[rank + b][1] for b in range(len(block_map))]
    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    strides = [int(np.prod(shape[d + 1:])) for d in range(rank)]
    cursor = 0
    indices = [0] * len(levels)

    def place() -> None:
        nonlocal cursor
        orig = [0] * rank
        for lv in range(rank):
            orig[order[lv]] = indices[lv]
        for lv in range(rank, len(levels)):
            b = order[lv] - rank
            dim = block_map[b]
            orig[dim] = orig[dim] * block_size[b] + indices[lv]
        dense[sum(o * s for o, s in zip(orig, strides, strict=True))] = values[cursor]
        cursor += 1

    def walk(level: int, prev: int) -> None:
        if level == len(levels):
            place()
            return
        kind, size, segments, idx = levels[level]
        if kind == "dense":
            for i in range(size):
                indices[level] = i
                walk(level + 1, prev * size + i)
        else:
            assert segments is not None and idx is not None
            for i in range(int(segments[prev]), int(segments[prev + 1])):
                indices[level] = int(idx[i])
                walk(level + 1, i)

    walk(0, 0)
    if cursor != values.size:
        raise ConversionError(f"sparse tensor: {values.size} stored values, {cursor} placed")
    return dense.reshape(shape)


def _index_vector(table: Any, kind: int) -> npt.NDArray[np.int64]:
    """Read one of the Int32Vector / Uint16Vector / Uint8Vector unions of the sparsity schema."""
    names = {tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
             tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
             tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector}
    if kind not in names:
        raise ConversionError(f"sparse tensor: unknown index vector type {kind}")
    vec = names[kind]()
    vec.Init(table.Bytes, table.Pos)
    return np.asarray(vec.ValuesAsNumpy(), dtype=np.int64)


def fold_constants(graph: Graph) -> Graph:
    """Evaluate DENSIFY and DEQUANTIZE on constant inputs and drop them from the graph.

    Why: these ops only decode stored weights (sparse, fp16); running them once at conversion
    time gives the runtime plain float32 constants, which every backend handles best.
    """
    kept: list[Operator] = []
    for op in graph.operators:
        if op.op in ("DENSIFY", "DEQUANTIZE"):
            src = graph.tensors[op.inputs[0]]
            dst = graph.tensors[op.outputs[0]]
            if src.data is None:
                raise ConversionError(
                    f"unsupported TFLite op {op.op} on a non-constant input in model "
                    f"{graph.model} (operator #{op.index}): only weight decoding is supported")
            if op.op == "DENSIFY":
                if src.sparse is None:
                    raise ConversionError(f"model {graph.model}: DENSIFY (operator #{op.index}) "
                                          "input is not sparse")
                dst.data = densify(src.data, dst.shape, src.sparse)
            else:
                if src.sparse is not None:
                    raise ConversionError(f"model {graph.model}: DEQUANTIZE (operator "
                                          f"#{op.index}) of a sparse tensor")
                if src.dtype != np.float16:
                    raise ConversionError(
                        f"unsupported TFLite op DEQUANTIZE from {src.dtype} in model "
                        f"{graph.model} (operator #{op.index}): only fp16 weights are supported")
                dst.data = src.data.astype(dst.dtype).reshape(dst.shape)
            graph.folded[op.op] = graph.folded.get(op.op, 0) + 1
        else:
            kept.append(op)
    graph.operators = kept
    for t in graph.tensors:
        if t.sparse is not None and t.data is not None and t.data.shape != t.shape:
            # Only consumed by DENSIFY, which we folded; keep it from being mistaken as dense.
            t.data = None
    return graph
