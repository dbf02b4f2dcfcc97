"""Build tiny single-op TFLite models in memory, to test the converter op by op against LiteRT.

Uses the flatbuffer object API that ships with the development dependency ai-edge-litert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema

_TYPES = {np.dtype(np.float32): schema.TensorType.FLOAT32,
          np.dtype(np.float16): schema.TensorType.FLOAT16,
          np.dtype(np.int32): schema.TensorType.INT32}


@dataclass
class TinyModel:
    """Tensors and one or more operators; ``finish`` serialises the flatbuffer."""

    tensors: list[Any] = field(default_factory=list)
    buffers: list[Any] = field(default_factory=lambda: [schema.BufferT()])
    operators: list[Any] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)

    def tensor(self, shape: tuple[int, ...], dtype: Any = np.float32,
               data: npt.NDArray[Any] | None = None) -> int:
        t = schema.TensorT()
        t.shape = np.asarray(shape, dtype=np.int32)
        t.type = _TYPES[np.dtype(dtype)]
        t.name = f"tensor{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(),
                                     dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def sparse_tensor(self, shape: tuple[int, ...], values: npt.NDArray[Any],
                      sparsity: Any) -> int:
        """A constant stored in TFLite's sparse format (values only, plus sparsity metadata)."""
        index = self.tensor(shape, values.dtype, values)
        self.tensors[index].sparsity = sparsity
        return index

    def op(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0,
           options: Any = None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = schema.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs = np.asarray(inputs, dtype=np.int32)
        o.outputs = np.asarray(outputs, dtype=np.int32)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        g = schema.SubGraphT()
        g.tensors, g.operators = self.tensors, self.operators
        g.inputs = np.asarray(inputs, dtype=np.int32)
        g.outputs = np.asarray(outputs, dtype=np.int32)
        m = schema.ModelT()
        m.version = 3
        codes = []
        for c in self.codes:
            oc = schema.OperatorCodeT()
            oc.builtinCode = c
            oc.deprecatedBuiltinCode = min(c, 127)
            oc.version = 1
            codes.append(oc)
        m.operatorCodes, m.subgraphs, m.buffers = codes, [g], self.buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
