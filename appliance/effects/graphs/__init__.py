"""Pixel work as ONNX graphs the project generates in code.

Why graphs instead of NumPy: the same pixel stages then run on ONNX Runtime on a laptop and as
TensorRT engines on a Jetson, through the one backend interface (``ModelSet.get(name).run``),
with caller-owned buffers that are wiped after each job. Each builder function returns an
``onnx.ModelProto`` that is deterministic to the byte (fixed node and tensor names, no
timestamps, a fixed producer), so its sha256 can be pinned in ``engines/models.toml`` like a
converted model's and ``ephemera build`` refuses a graph that changed.

The small API other effects build on:

* ``Graph``: collects inputs, constants and nodes with deterministic names; ``model()``.
* ``serialize(model)`` -> bytes; ``generate("module:function")`` -> bytes, as the build does.
* ``appliance.effects.graphs.ops``: box filters, guided filter, foreground estimation,
  colour conversions (uint8 HWC BGR <-> float planes), bilinear/bicubic resampling.
* Graph modules (``warp``, ``matte``, ``retouch``, ``style``): one builder per manifest entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The build's own generator and serialiser, re-exported for the graph modules and tests.
from appliance.models.generated import generate  # noqa: F401
from appliance.models.tflite_to_onnx import serialize  # noqa: F401

OPSET = 17
PRODUCER = "ephemera-graphs"
PRODUCER_VERSION = "1"
IR_VERSION = 8  # the IR of opset 17: loadable by ONNX Runtime >= 1.12 and TensorRT 8.5+

_DTYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "int64": TensorProto.INT64}

Dim = int | str


class Graph:
    """An ONNX graph under construction; every name is derived from a counter, never random."""

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.doc = doc
        self._nodes: list[onnx.NodeProto] = []
        self._inits: list[onnx.TensorProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        self._count = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def input(self, name: str, dtype: str, shape: list[Dim]) -> str:
        self._inputs.append(helper.make_tensor_value_info(name, _DTYPES[dtype], shape))
        return name

    def output(self, value: str, name: str, dtype: str, shape: list[Dim]) -> None:
        self._nodes.append(helper.make_node("Identity", [value], [name], name=f"out_{name}"))
        self._outputs.append(helper.make_tensor_value_info(name, _DTYPES[dtype], shape))

    def const(self, value: Any, dtype: str = "float32") -> str:
        """A constant initializer (identical constants are shared)."""
        array = np.asarray(value, dtype=dtype)
        key = (str(array.dtype), array.tobytes(), tuple(array.shape))
        if key not in self._consts:
            name = self._name("c")
            self._inits.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def ints(self, *values: int) -> str:
        return self.const(list(values), "int64")

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        """One node with one output; returns the output's name."""
        out = self._name(op_type.lower())
        self._nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"n_{out}",
                                            **attrs))
        return out

    def ops(self, op_type: str, *inputs: str, outputs: int, **attrs: Any) -> list[str]:
        """One node with several outputs."""
        outs = [self._name(op_type.lower()) for _ in range(outputs)]
        self._nodes.append(helper.make_node(op_type, list(inputs), outs, name=f"n_{outs[0]}",
                                            **attrs))
        return outs

    # Arithmetic shorthands keep the graph modules readable.
    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def scale(self, a: str, factor: float) -> str:
        return self.op("Mul", a, self.const(factor))

    def clip(self, a: str, low: float, high: float) -> str:
        return self.op("Clip", a, self.const(low), self.const(high))

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self._nodes, self.name, self._inputs, self._outputs,
                                  initializer=self._inits, doc_string=self.doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name=PRODUCER, producer_version=PRODUCER_VERSION,
                                  ir_version=IR_VERSION)
        onnx.checker.check_model(model, full_check=True)
        return model
