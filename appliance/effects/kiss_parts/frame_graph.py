"""The kiss video's per-frame pixel work as one generated ONNX graph.

Why a graph: every output pixel of every frame is a bilinear sample of each person's
premultiplied cut-out at the place the frame's geometry says (approach, tilt, the 2-D turn and
the face's local warps, all folded into one sampling grid per person), then "over" compositing of
the two people onto the backdrop. As a graph it runs on ONNX Runtime here and on TensorRT on a
Jetson, with no per-pixel Python. The grids are geometry (coordinates, made from the mesh), the
samples are the guest's pixels: those only ever pass through the graph.

Inputs (H x W the frame, h x w each cut-out, per person ``back_*`` then ``front_*``; every
dimension fixed when the graph is built):

* ``backdrop``  float32 (1, 3, H, W), 0..255
* ``*_rgba``    float32 (1, 4, h, w): colour premultiplied by alpha (0..255), alpha (0..1)
* ``*_grid``    float32 (1, H, W, 2): for each frame pixel, the place in the cut-out to show,
                in GridSample's normalised coordinates (-1 and 1 are the cut-out's outer
                edges, align_corners=0); outside the cut-out is transparent

Output ``frame``: uint8 (H, W, 3), same channel order as the inputs.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto, helper

from appliance.effects.kiss_parts.cutout import CUT_HEIGHT, CUT_WIDTH

OPSET = 17
PRODUCER = "ephemera-graphs"
GRAPH_NAME = "kiss_frame"
FRAME_WIDTH, FRAME_HEIGHT = 1280, 720


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def op(self, kind: str, inputs: list[str], hint: str = "", **attrs: Any) -> str:
        out = self.name(hint or kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def const(self, hint: str, values: list[float] | list[int], dims: list[int],
              dtype: int = TensorProto.FLOAT) -> str:
        name = self.name(hint)
        self.inits.append(helper.make_tensor(name, dtype, dims, values))
        return name


def _person(b: _Builder, prefix: str, under: str) -> str:
    """Composite one person over ``under`` (1, 3, H, W); returns the new (1, 3, H, W)."""
    sampled = b.op("GridSample", [f"{prefix}_rgba", f"{prefix}_grid"], "sampled",
                   mode="bilinear", padding_mode="zeros", align_corners=0)
    starts = b.const("s0", [0], [1], TensorProto.INT64)
    three = b.const("s3", [3], [1], TensorProto.INT64)
    four = b.const("s4", [4], [1], TensorProto.INT64)
    channel = b.const("c1", [1], [1], TensorProto.INT64)
    colour = b.op("Slice", [sampled, starts, three, channel], "colour")
    alpha = b.op("Slice", [sampled, three, four, channel], "alpha")
    keep = b.op("Sub", [b.const("one_f", [1.0], []), alpha], "keep")
    return b.op("Add", [colour, b.op("Mul", [under, keep])], "over")


def kiss_frame(height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH,
               cut_height: int = CUT_HEIGHT, cut_width: int = CUT_WIDTH) -> onnx.ModelProto:
    """The frame compositor described in the module docstring (opset 17, deterministic).

    Every dimension is fixed (the backends allocate their buffers once).
    """
    b = _Builder()
    frame = _person(b, "back", "backdrop")
    frame = _person(b, "front", frame)
    clipped = b.op("Clip", [frame, b.const("lo", [0.0], []), b.const("hi", [255.0], [])])
    rounded = b.op("Round", [clipped])
    squeezed = b.op("Squeeze", [rounded, b.const("sq", [0], [1], TensorProto.INT64)])
    hwc = b.op("Transpose", [squeezed], "hwc", perm=[1, 2, 0])
    b.nodes.append(helper.make_node("Cast", [hwc], ["frame"], name="frame", to=TensorProto.UINT8))

    def image(name: str, channels: int, h: int, w: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, h, w])

    inputs = [image("backdrop", 3, height, width)]
    for prefix in ("back", "front"):
        inputs += [image(f"{prefix}_rgba", 4, cut_height, cut_width),
                   helper.make_tensor_value_info(f"{prefix}_grid", TensorProto.FLOAT,
                                                 [1, height, width, 2])]
    outputs = [helper.make_tensor_value_info("frame", TensorProto.UINT8, [height, width, 3])]
    graph = helper.make_graph(b.nodes, GRAPH_NAME, inputs, outputs, initializer=b.inits)
    model = helper.make_model(graph, producer_name=PRODUCER, producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
