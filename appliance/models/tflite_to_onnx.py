"""Convert a TFLite graph (see tflite_graph) to an ONNX model, op by op.

Layout: TFLite is NHWC, ONNX convolution is NCHW. The model input is declared NCHW and every
4-D activation stays NCHW from there on; weights are permuted once, at conversion time. A
Transpose is emitted only where the TFLite graph genuinely needs NHWC order (a RESHAPE of a 4-D
tensor, a reduction that drops dimensions, a 4-D graph output kept in TFLite's shape), never
around each op.

The output is byte-deterministic (fixed producer, IR version and opset, names derived from tensor
indices), so its sha256 can be pinned in engines/models.toml. Only ops the ONNX Runtime CPU
provider and TensorRT 10's ONNX parser both support are emitted (``EMITTED_OPS``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from appliance.models.errors import ConversionError
from appliance.models.tflite_graph import Graph, Operator, Tensor, fold_constants, read_tflite

OPSET = 17
IR_VERSION = 8  # ONNX Runtime >= 1.10 and TensorRT 10 read it; pinned for stable bytes
PRODUCER = "ephemera-tflite2onnx"
PRODUCER_VERSION = "1"

# Every ONNX op this converter can emit; all are in TensorRT 10's supported-operator list.
EMITTED_OPS = frozenset({
    "Conv", "ConvTranspose", "Relu", "Clip", "Tanh", "Add", "Mul", "Pad", "MaxPool",
    "AveragePool", "GlobalAveragePool", "ReduceMean", "Min", "HardSwish", "Sigmoid",
    "Reshape", "Transpose", "Concat", "Resize", "DepthToSpace",
})

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
_AXIS_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}

# tflite.ActivationFunctionType values
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6, _ACT_TANH = 0, 1, 2, 3, 4
# tflite.Padding values
_PAD_SAME, _PAD_VALID = 0, 1


class _Context:
    """Accumulates ONNX nodes and constants; tracks the layout each tensor is held in."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.held: dict[int, tuple[str, str]] = {}  # tensor index -> (onnx name, "nchw"|"plain")
        self.converted: dict[tuple[int, str], str] = {}
        self.op: Operator | None = None
        self.pending: tuple[int, str, str] | None = None  # fused activation to emit next

    # -- naming and emission -------------------------------------------------------------
    def fail(self, what: str) -> ConversionError:
        where = (f"operator #{self.op.index}, {self.op.op}" if self.op is not None
                 else "graph outputs")
        return ConversionError(f"{what} in model {self.graph.model} ({where})")

    def const(self, array: npt.NDArray[Any] | np.generic, hint: str) -> str:
        name = f"c{len(self.initializers)}_{hint}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        assert op_type in EMITTED_OPS, op_type
        self.nodes.append(helper.make_node(op_type, inputs, outputs,
                                           name=f"n{len(self.nodes)}_{op_type}", **attrs))
        self._flush_activation()

    # -- tensors -------------------------------------------------------------------------
    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def constant(self, index: int, what: str) -> npt.NDArray[Any]:
        data = self.tensor(index).data
        if data is None:
            raise self.fail(f"non-constant {what} is not supported")
        return data

    def layout(self, index: int) -> str:
        if index in self.held:
            return self.held[index][1]
        return "plain"

    def value(self, index: int, want: str) -> str:
        """The ONNX name of tensor ``index`` in layout ``want`` ("nchw", "plain" or "any")."""
        t = self.tensor(index)
        if index not in self.held:
            if t.data is None:
                raise self.fail(f"tensor {t.name!r} is used before it is produced")
            data = t.data
            if want == "nchw" and data.ndim == 4:
                data = data.transpose(NHWC_TO_NCHW)
            name = self.const(data.astype(np.float32) if data.dtype == np.float16 else data,
                              f"t{index}")
            return name
        name, have = self.held[index]
        if want in ("any", have) or len(t.shape) != 4:
            return name
        key = (index, want)
        if key not in self.converted:
            out = f"t{index}_{want}"
            perm = NHWC_TO_NCHW if want == "nchw" else NCHW_TO_NHWC
            self.node("Transpose", [name], [out], perm=list(perm))
            self.converted[key] = out
        return self.converted[key]

    def produce(self, index: int, layout: str) -> str:
        """Name for the value that will hold tensor ``index``; records its layout."""
        name = f"t{index}"
        self.held[index] = (name, layout if len(self.tensor(index).shape) == 4 else "plain")
        return name

    def activation(self, fused: int, index: int, layout: str) -> str:
        """Output name for an op with a fused activation; the activation node follows the op.

        Call it just before ``node()`` for the op: the activation is emitted right after it.
        """
        out = self.produce(index, layout)
        if fused == _ACT_NONE:
            return out
        if fused not in (_ACT_RELU, _ACT_RELU6, _ACT_RELU_N1_TO_1, _ACT_TANH):
            raise self.fail(f"unsupported fused activation {fused}")
        raw = f"t{index}_preact"
        self.pending = (fused, raw, out)
        return raw

    def _flush_activation(self) -> None:
        if self.pending is None:
            return
        fused, raw, out = self.pending
        self.pending = None
        if fused == _ACT_RELU:
            self.node("Relu", [raw], [out])
        elif fused == _ACT_TANH:
            self.node("Tanh", [raw], [out])
        else:
            lo, hi = (0.0, 6.0) if fused == _ACT_RELU6 else (-1.0, 1.0)
            self.node("Clip", [raw, self.const(np.float32(lo), "lo"),
                               self.const(np.float32(hi), "hi")], [out])


# -- shared helpers ----------------------------------------------------------------------


def _same_pads(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: output = ceil(in/stride), the odd pixel goes after."""
    out = -(-in_size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    return total // 2, total - total // 2


def _spatial_pads(ctx: _Context, padding: int, hw: tuple[int, int], kernel: tuple[int, int],
                  stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> list[int]:
    if padding == _PAD_VALID:
        return [0, 0, 0, 0]
    if padding != _PAD_SAME:
        raise ctx.fail(f"unsupported padding mode {padding}")
    top, bottom = _same_pads(hw[0], kernel[0], stride[0], dilation[0])
    left, right = _same_pads(hw[1], kernel[1], stride[1], dilation[1])
    return [top, left, bottom, right]


def _broadcast_const_nchw(data: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A constant that broadcasts against an NHWC activation, reshaped to broadcast on NCHW."""
    if data.ndim == 0:
        return data
    full = data.reshape((1,) * (4 - data.ndim) + data.shape)
    return full.transpose(NHWC_TO_NCHW)


def _operand(ctx: _Context, index: int, layout: str) -> str:
    t = ctx.tensor(index)
    if index not in ctx.held and t.data is not None:
        data = t.data.astype(np.float32) if t.data.dtype == np.float16 else t.data
        if layout == "nchw":
            data = _broadcast_const_nchw(data)
        return ctx.const(data, f"t{index}")
    return ctx.value(index, layout)


def _elementwise_layout(ctx: _Context, op: Operator) -> str:
    """NCHW when any activation operand is a 4-D tensor held NCHW, else plain."""
    for i in op.inputs:
        if i in ctx.held and ctx.layout(i) == "nchw":
            return "nchw"
    return "plain"


# -- one function per TFLite op ----------------------------------------------------------


def _conv_2d(ctx: _Context, op: Operator) -> None:
    o = op.options
    x = ctx.value(op.inputs[0], "nchw")
    w = ctx.constant(op.inputs[1], "convolution weights")  # [O, KH, KW, I]
    _, h, wd, _ = ctx.tensor(op.inputs[0]).shape
    kernel = (w.shape[1], w.shape[2])
    stride = (o.StrideH(), o.StrideW())
    dil = (o.DilationHFactor(), o.DilationWFactor())
    inputs = [x, ctx.const(w.transpose(0, 3, 1, 2), "w")]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(ctx.const(ctx.constant(op.inputs[2], "bias").astype(np.float32), "b"))
    out = ctx.activation(o.FusedActivationFunction(), op.outputs[0], "nchw")
    ctx.node("Conv", inputs, [out], kernel_shape=list(kernel), strides=list(stride),
             dilations=list(dil), pads=_spatial_pads(ctx, o.Padding(), (h, wd), kernel, stride,
                                                      dil), group=1)


def _depthwise_conv_2d(ctx: _Context, op: Operator) -> None:
    o = op.options
    x = ctx.value(op.inputs[0], "nchw")
    w = ctx.constant(op.inputs[1], "depthwise weights")  # [1, KH, KW, C * multiplier]
    _, h, wd, channels = ctx.tensor(op.inputs[0]).shape
    kernel = (w.shape[1], w.shape[2])
    stride = (o.StrideH(), o.StrideW())
    dil = (o.DilationHFactor(), o.DilationWFactor())
    inputs = [x, ctx.const(w.transpose(3, 0, 1, 2), "w")]  # [C*m, 1, KH, KW]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(ctx.const(ctx.constant(op.inputs[2], "bias").astype(np.float32), "b"))
    out = ctx.activation(o.FusedActivationFunction(), op.outputs[0], "nchw")
    ctx.node("Conv", inputs, [out], kernel_shape=list(kernel), strides=list(stride),
             dilations=list(dil), pads=_spatial_pads(ctx, o.Padding(), (h, wd), kernel, stride,
                                                      dil), group=int(channels))


def _transpose_conv_bias(ctx: _Context, op: Operator) -> None:
    """MediaPipe's Convolution2DTransposeBias: TRANSPOSE_CONV plus a bias, options packed raw.

    Its custom options are TfLiteTransposeConvParams as bytes: int32 padding (1 SAME,
    2 VALID in the C enum), int32 stride_width, int32 stride_height.
    """
    if len(op.custom_options) < 12:
        raise ctx.fail("Convolution2DTransposeBias options are truncated")
    padding, stride_w, stride_h = struct.unpack_from("<iii", op.custom_options)
    x = ctx.value(op.inputs[0], "nchw")
    w = ctx.constant(op.inputs[1], "transposed-convolution weights")  # [O, KH, KW, I]
    bias = ctx.constant(op.inputs[2], "bias").astype(np.float32)
    _, oh, ow, _ = ctx.tensor(op.outputs[0]).shape
    _, ih, iw, _ = ctx.tensor(op.inputs[0]).shape
    kh, kw = w.shape[1], w.shape[2]
    if padding == 1:
        th = max((ih - 1) * stride_h + kh - oh, 0)
        tw = max((iw - 1) * stride_w + kw - ow, 0)
        pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
    elif padding == 2:
        pads = [0, 0, 0, 0]
    else:
        raise ctx.fail(f"unsupported Convolution2DTransposeBias padding {padding}")
    out = ctx.produce(op.outputs[0], "nchw")
    ctx.node("ConvTranspose", [x, ctx.const(w.transpose(3, 0, 1, 2), "w"), ctx.const(bias, "b")],
             [out], kernel_shape=[kh, kw], strides=[stride_h, stride_w], pads=pads)


def _binary(onnx_op: str) -> Callable[[_Context, Operator], None]:
    def emit(ctx: _Context, op: Operator) -> None:
        layout = _elementwise_layout(ctx, op)
        a = _operand(ctx, op.inputs[0], layout)
        b = _operand(ctx, op.inputs[1], layout)
        fused = op.options.FusedActivationFunction() if op.options is not None else _ACT_NONE
        out = ctx.activation(fused, op.outputs[0], layout)
        ctx.node(onnx_op, [a, b], [out])
    return emit


def _unary(onnx_op: str) -> Callable[[_Context, Operator], None]:
    def emit(ctx: _Context, op: Operator) -> None:
        layout = ctx.layout(op.inputs[0])
        x = ctx.value(op.inputs[0], layout)
        ctx.node(onnx_op, [x], [ctx.produce(op.outputs[0], layout)])
    return emit


def _relu6(ctx: _Context, op: Operator) -> None:
    layout = ctx.layout(op.inputs[0])
    x = ctx.value(op.inputs[0], layout)
    ctx.node("Clip", [x, ctx.const(np.float32(0), "zero"), ctx.const(np.float32(6), "six")],
             [ctx.produce(op.outputs[0], layout)])


def _prelu(ctx: _Context, op: Operator) -> None:
    """PReLU, exact for every slope (PINTO's max(slope*x, x) is right only for slope <= 1).

    Computed as relu(x) + slope * min(x, 0): for x >= 0 the second term is (+/-)0, for x < 0
    the first is 0 and the second is the same single product TFLite rounds. Why not ONNX's
    PRelu op: ONNX Runtime's CPU provider has no blocked-layout (NCHWc) kernel for it and its
    broadcasting kernel made FaceMesh 2.5x slower. For the usual per-channel slope on an NCHW
    activation, min(x, 0) * slope is built from two 1x1 depthwise convolutions (weights -1 and
    -slope: -slope * relu(-x)), which ONNX Runtime runs in its blocked layout with the ReLU and
    the final Add fused in; TensorRT runs them as ordinary convolutions.
    """
    layout = ctx.layout(op.inputs[0])
    x = ctx.value(op.inputs[0], layout)
    out = op.outputs[0]
    shape = ctx.tensor(op.inputs[0]).shape
    alpha = ctx.tensor(op.inputs[1]).data if op.inputs[1] not in ctx.held else None
    positive = f"t{out}_pos"
    ctx.node("Relu", [x], [positive])
    if layout == "nchw" and alpha is not None and alpha.size in (1, shape[3]):
        channels = shape[3]
        slope = np.broadcast_to(alpha.astype(np.float32).reshape(-1), (channels,))
        flipped, flipped_relu, scaled = f"t{out}_flip", f"t{out}_flip_relu", f"t{out}_scaled"
        ctx.node("Conv", [x, ctx.const(-np.ones((channels, 1, 1, 1), np.float32), "minus_one")],
                 [flipped], kernel_shape=[1, 1], group=channels)
        ctx.node("Relu", [flipped], [flipped_relu])
        ctx.node("Conv", [flipped_relu, ctx.const((-slope).reshape(channels, 1, 1, 1),
                                                  "minus_slope")],
                 [scaled], kernel_shape=[1, 1], group=channels)
    else:
        negative, scaled = f"t{out}_neg", f"t{out}_scaled"
        ctx.node("Min", [x, ctx.const(np.float32(0), "zero")], [negative])
        ctx.node("Mul", [negative, _operand(ctx, op.inputs[1], layout)], [scaled])
    ctx.node("Add", [positive, scaled], [ctx.produce(out, layout)])


def _pad(ctx: _Context, op: Operator) -> None:
    layout = ctx.layout(op.inputs[0])
    x = ctx.value(op.inputs[0], layout)
    pads = ctx.constant(op.inputs[1], "paddings").astype(np.int64)  # [rank, 2], NHWC order
    constant_zero = op.op == "PAD" or len(op.inputs) < 3 or not np.any(
        ctx.constant(op.inputs[2], "pad value"))
    if layout == "nchw" and constant_zero and not pads[:3].any():
        _pad_channels(ctx, op, x, (int(pads[3, 0]), int(pads[3, 1])))
        return
    if layout == "nchw":
        pads = pads[list(NHWC_TO_NCHW)]
    inputs = [x, ctx.const(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")]
    if op.op == "PADV2" and len(op.inputs) > 2:
        inputs.append(ctx.const(ctx.constant(op.inputs[2], "pad value").reshape(()), "value"))
    ctx.node("Pad", inputs, [ctx.produce(op.outputs[0], layout)], mode="constant")


def _pad_channels(ctx: _Context, op: Operator, x: str, pads: tuple[int, int]) -> None:
    """Zero channels added as a 1x1 convolution with an identity block (BlazeFace residuals).

    Exact for finite activations (each output is 1 * x + sum of 0 * x). Why: a channel Pad has
    no kernel in ONNX Runtime's blocked (NCHWc) layout, and one such Pad made every later op
    of FaceMesh and BlazeFace reorder in and out of it; a convolution stays blocked, and the
    residual Add that follows fuses into it.
    """
    channels = ctx.tensor(op.inputs[0]).shape[3]
    total = channels + pads[0] + pads[1]
    weights = np.zeros((total, channels, 1, 1), dtype=np.float32)
    weights[pads[0] + np.arange(channels), np.arange(channels), 0, 0] = 1.0
    ctx.node("Conv", [x, ctx.const(weights, "channel_pad")], [ctx.produce(op.outputs[0], "nchw")],
             kernel_shape=[1, 1])


def _pool(onnx_op: str) -> Callable[[_Context, Operator], None]:
    def emit(ctx: _Context, op: Operator) -> None:
        o = op.options
        x = ctx.value(op.inputs[0], "nchw")
        _, h, w, _ = ctx.tensor(op.inputs[0]).shape
        kernel = (o.FilterHeight(), o.FilterWidth())
        stride = (o.StrideH(), o.StrideW())
        out = ctx.activation(o.FusedActivationFunction(), op.outputs[0], "nchw")
        pads = _spatial_pads(ctx, o.Padding(), (h, w), kernel, stride)
        if onnx_op == "AveragePool" and kernel == (h, w) and pads == [0, 0, 0, 0]:
            ctx.node("GlobalAveragePool", [x], [out])
        elif onnx_op == "AveragePool":  # TFLite averages over valid pixels only
            ctx.node("AveragePool", [x], [out], kernel_shape=list(kernel), strides=list(stride),
                     pads=pads, count_include_pad=0)
        else:
            ctx.node("MaxPool", [x], [out], kernel_shape=list(kernel), strides=list(stride),
                     pads=pads)
    return emit


def _mean(ctx: _Context, op: Operator) -> None:
    axes = [int(a) for a in ctx.constant(op.inputs[1], "reduction axes").reshape(-1)]
    rank = len(ctx.tensor(op.inputs[0]).shape)
    axes = sorted({a % rank for a in axes})
    keep = bool(op.options.KeepDims()) if op.options is not None else False
    layout = ctx.layout(op.inputs[0]) if keep else "plain"
    if layout == "nchw":
        axes = sorted(_AXIS_TO_NCHW[a] for a in axes)
    x = ctx.value(op.inputs[0], layout)
    ctx.node("ReduceMean", [x], [ctx.produce(op.outputs[0], layout)], axes=axes,
             keepdims=int(keep))


def _reshape(ctx: _Context, op: Operator) -> None:
    x = ctx.value(op.inputs[0], "plain")
    shape = ctx.tensor(op.outputs[0]).shape
    if not shape:
        raise ctx.fail("RESHAPE to an unknown shape")
    ctx.node("Reshape", [x, ctx.const(np.asarray(shape, dtype=np.int64), "shape")],
             [ctx.produce(op.outputs[0], "plain")])


def _concatenation(ctx: _Context, op: Operator) -> None:
    rank = len(ctx.tensor(op.outputs[0]).shape)
    axis = op.options.Axis() % rank
    layout = "nchw" if rank == 4 else "plain"
    names = [_operand(ctx, i, layout) for i in op.inputs]
    out = ctx.activation(op.options.FusedActivationFunction(), op.outputs[0], layout)
    ctx.node("Concat", names, [out], axis=_AXIS_TO_NCHW[axis] if layout == "nchw" else axis)


def _resize_bilinear(ctx: _Context, op: Operator) -> None:
    """TFLite's three coordinate rules map one-to-one onto ONNX Resize's."""
    o = op.options
    x = ctx.value(op.inputs[0], "nchw")
    n, oh, ow, c = ctx.tensor(op.outputs[0]).shape
    if o.AlignCorners() and o.HalfPixelCenters():
        raise ctx.fail("RESIZE_BILINEAR with both align_corners and half_pixel_centers")
    mode = ("align_corners" if o.AlignCorners() else
            "half_pixel" if o.HalfPixelCenters() else "asymmetric")
    sizes = ctx.const(np.asarray([n, c, oh, ow], dtype=np.int64), "sizes")
    ctx.node("Resize", [x, "", "", sizes], [ctx.produce(op.outputs[0], "nchw")], mode="linear",
             coordinate_transformation_mode=mode)


def _depth_to_space(ctx: _Context, op: Operator) -> None:
    """TFLite's channel order (row, column, channel) is ONNX's DCR mode."""
    x = ctx.value(op.inputs[0], "nchw")
    ctx.node("DepthToSpace", [x], [ctx.produce(op.outputs[0], "nchw")],
             blocksize=op.options.BlockSize(), mode="DCR")


OP_TABLE: dict[str, Callable[[_Context, Operator], None]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "Convolution2DTransposeBias": _transpose_conv_bias,
    "ADD": _binary("Add"),
    "MUL": _binary("Mul"),
    "PAD": _pad,
    "PADV2": _pad,
    "MAX_POOL_2D": _pool("MaxPool"),
    "AVERAGE_POOL_2D": _pool("AveragePool"),
    "MEAN": _mean,
    "RELU": _unary("Relu"),
    "RELU6": _relu6,
    "PRELU": _prelu,
    "HARD_SWISH": _unary("HardSwish"),
    "LOGISTIC": _unary("Sigmoid"),
    "TANH": _unary("Tanh"),
    "RESHAPE": _reshape,
    "CONCATENATION": _concatenation,
    "RESIZE_BILINEAR": _resize_bilinear,
    "DEPTH_TO_SPACE": _depth_to_space,
}
# Folded into constants by tflite_graph.fold_constants before emission.
FOLDED_OPS = ("DENSIFY", "DEQUANTIZE")


def output_layout(shape: tuple[int, ...]) -> str:
    """Image-like outputs (4-D with a spatial extent) are NCHW; the rest keep TFLite's shape."""
    return "nchw" if len(shape) == 4 and (shape[1] > 1 or shape[2] > 1) else "plain"


def onnx_shape(shape: tuple[int, ...], layout: str) -> list[int]:
    return [shape[i] for i in NHWC_TO_NCHW] if layout == "nchw" else list(shape)


def convert_graph(graph: Graph) -> onnx.ModelProto:
    """Emit the ONNX model for a (constant-folded) TFLite graph."""
    ctx = _Context(graph)
    graph_inputs = []
    for i in graph.inputs:
        t = graph.tensors[i]
        if t.dtype != np.float32:
            raise ConversionError(f"model {graph.model}: input {t.name!r} is {t.dtype}; only "
                                  "float32 inputs are supported")
        layout = "nchw" if len(t.shape) == 4 else "plain"
        ctx.held[i] = (t.name, layout)
        graph_inputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT,
                                                          onnx_shape(t.shape, layout)))
    for op in graph.operators:
        ctx.op = op
        handler = OP_TABLE.get(op.op)
        if handler is None:
            raise ConversionError(f"unsupported TFLite op {op.op} in model {graph.model} "
                                  f"(operator #{op.index})")
        handler(ctx, op)
    graph_outputs = []
    renames: dict[str, str] = {}
    for i in graph.outputs:
        t = graph.tensors[i]
        layout = output_layout(t.shape)
        ctx.op = None
        renames[ctx.value(i, layout)] = t.name
        graph_outputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT,
                                                           onnx_shape(t.shape, layout)))
    for node in ctx.nodes:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    onnx_graph = helper.make_graph(ctx.nodes, graph.model, graph_inputs, graph_outputs,
                                   ctx.initializers)
    model = helper.make_model(onnx_graph, producer_name=PRODUCER,
                              producer_version=PRODUCER_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def convert_tflite(raw: bytes, model_name: str) -> onnx.ModelProto:
    """TFLite flatbuffer bytes -> checked ONNX model."""
    return convert_graph(fold_constants(read_tflite(raw, model_name)))


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic bytes of the model (the form whose sha256 the manifest pins)."""
    return model.SerializeToString(deterministic=True)
