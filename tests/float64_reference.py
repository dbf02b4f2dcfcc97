"""An independent float64 evaluation of a TFLite graph (NHWC, straight from the flatbuffer).

Why: LiteRT and ONNX Runtime both compute in float32 and differ by summation order; evaluating
the same graph in float64 shows how far each one is from exact arithmetic, so the parity
tests can tell converter errors (large) from float32 rounding (tiny, and present in LiteRT too).
Written for clarity, not speed; shares no code with the converter beyond the flatbuffer reader.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from appliance.models.tflite_graph import Graph, Operator

F64 = npt.NDArray[np.float64]


def _same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _windows(x: F64, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, padding: int,
             fill: float) -> tuple[F64, F64]:
    """[N, OH, OW, C, KH, KW] windows and the matching validity mask (1 inside the image)."""
    if padding == 0:  # SAME
        top, bottom = _same(x.shape[1], kh, sh, dh)
        left, right = _same(x.shape[2], kw, sw, dw)
    else:
        top = bottom = left = right = 0
    pads = ((0, 0), (top, bottom), (left, right), (0, 0))
    xp = np.pad(x, pads, constant_values=fill)
    valid = np.pad(np.ones((1, *x.shape[1:3], 1)), pads)
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    win = sliding_window_view(xp, (ekh, ekw), axis=(1, 2))[:, ::sh, ::sw, :, ::dh, ::dw]
    mask = sliding_window_view(valid, (ekh, ekw), axis=(1, 2))[:, ::sh, ::sw, :, ::dh, ::dw]
    return win, mask


def _act(x: F64, fused: int) -> F64:
    if fused == 1:
        return np.maximum(x, 0)
    if fused == 2:
        return np.clip(x, -1, 1)
    if fused == 3:
        return np.clip(x, 0, 6)
    if fused == 4:
        return np.tanh(x)
    assert fused == 0, fused
    return x


def _resize(x: F64, oh: int, ow: int, align: bool, half: bool) -> F64:
    def coords(out: int, size: int) -> tuple[Any, Any, Any]:
        scale = (size - 1) / (out - 1) if align and out > 1 else size / out
        pos = (np.arange(out) + 0.5) * scale - 0.5 if half else np.arange(out) * scale
        lo = np.floor(pos)
        frac = pos - np.maximum(lo, 0)
        return (np.clip(lo, 0, size - 1).astype(int),
                np.clip(np.ceil(pos), 0, size - 1).astype(int), frac)

    y0, y1, fy = coords(oh, x.shape[1])
    x0, x1, fx = coords(ow, x.shape[2])
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return np.asarray(top * (1 - fy) + bottom * fy)


def _conv(op: Operator, x: F64, w: F64, b: F64 | None, depthwise: bool) -> F64:
    o = op.options
    win, _ = _windows(x, w.shape[1], w.shape[2], o.StrideH(), o.StrideW(), o.DilationHFactor(),
                      o.DilationWFactor(), o.Padding(), 0.0)
    if depthwise:
        mult = w.shape[3] // x.shape[3]
        assert mult == 1, "depth multiplier > 1 not needed by these models"
        out = np.einsum("nhwckl,klc->nhwc", win, w[0])
    else:
        out = np.einsum("nhwckl,oklc->nhwo", win, w)
    if b is not None:
        out = out + b
    return _act(out, o.FusedActivationFunction())


def evaluate(graph: Graph, x: F64) -> dict[str, F64]:
    """Run the graph in float64 on an NHWC input; returns the outputs by tensor name."""
    vals: dict[int, F64] = {graph.inputs[0]: x.astype(np.float64)}

    def get(i: int) -> F64:
        if i in vals:
            return vals[i]
        data = graph.tensors[i].data
        assert data is not None, graph.tensors[i].name
        return data.astype(np.float64)

    for op in graph.operators:
        ins = [get(i) if i >= 0 else None for i in op.inputs]
        o = op.options
        name = op.op
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            b = ins[2] if len(ins) > 2 else None
            y = _conv(op, ins[0], ins[1], b, name == "DEPTHWISE_CONV_2D")
        elif name in ("ADD", "MUL"):
            a, c = ins[0], ins[1]
            y = _act(a + c if name == "ADD" else a * c, o.FusedActivationFunction())
        elif name == "PAD":
            pads = graph.tensors[op.inputs[1]].data
            y = np.pad(ins[0], [tuple(p) for p in pads])
        elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            fill = -np.inf if name == "MAX_POOL_2D" else 0.0
            win, mask = _windows(ins[0], o.FilterHeight(), o.FilterWidth(),
                                 o.StrideH(), o.StrideW(), 1, 1, o.Padding(), fill)
            y = (win.max(axis=(4, 5)) if name == "MAX_POOL_2D"
                 else win.sum(axis=(4, 5)) / mask.sum(axis=(4, 5)))
            y = _act(y, o.FusedActivationFunction())
        elif name == "MEAN":
            axes = tuple(int(a) for a in graph.tensors[op.inputs[1]].data.reshape(-1))
            y = ins[0].mean(axis=axes, keepdims=bool(o.KeepDims()))
        elif name == "RELU":
            y = np.maximum(ins[0], 0)
        elif name == "PRELU":
            y = np.where(ins[0] >= 0, ins[0], ins[1] * ins[0])
        elif name == "HARD_SWISH":
            xx = ins[0]
            y = xx * np.clip(xx + 3, 0, 6) / 6
        elif name == "LOGISTIC":
            y = 0.5 * (1 + np.tanh(0.5 * ins[0]))  # the logistic, without overflow
        elif name == "RESHAPE":
            y = ins[0].reshape(graph.tensors[op.outputs[0]].shape)
        elif name == "CONCATENATION":
            y = _act(np.concatenate(ins, axis=o.Axis()), o.FusedActivationFunction())
        elif name == "RESIZE_BILINEAR":
            _, oh, ow, _ = graph.tensors[op.outputs[0]].shape
            y = _resize(ins[0], oh, ow, bool(o.AlignCorners()), bool(o.HalfPixelCenters()))
        elif name == "DEPTH_TO_SPACE":
            bs = o.BlockSize()
            n, h, w, c = ins[0].shape
            y = (ins[0].reshape(n, h, w, bs, bs, c // bs // bs)
                 .transpose(0, 1, 3, 2, 4, 5).reshape(n, h * bs, w * bs, c // bs // bs))
        elif name == "Convolution2DTransposeBias":
            _, stride_w, stride_h = struct.unpack_from("<iii", op.custom_options)
            xx, w, b = ins[0], ins[1], ins[2]
            n, ih, iw, _ = xx.shape
            _, kh, kw, _ = w.shape
            _, oh, ow, co = graph.tensors[op.outputs[0]].shape
            full = np.zeros((n, (ih - 1) * stride_h + kh, (iw - 1) * stride_w + kw, co))
            for ki in range(kh):
                for kj in range(kw):
                    full[:, ki:ki + (ih - 1) * stride_h + 1:stride_h,
                         kj:kj + (iw - 1) * stride_w + 1:stride_w] += np.einsum(
                        "nijc,oc->nijo", xx, w[:, ki, kj, :])
            top = (full.shape[1] - oh) // 2
            left = (full.shape[2] - ow) // 2
            y = full[:, top:top + oh, left:left + ow] + b
        else:
            raise NotImplementedError(name)
        vals[op.outputs[0]] = np.asarray(y, dtype=np.float64)
    return {graph.tensors[i].name: vals[i] for i in graph.outputs}
