"""Op-level checks of the TFLite-to-ONNX converter on tiny in-memory models, against LiteRT."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from ai_edge_litert import schema_py_generated as schema

from appliance.models.errors import ConversionError
from appliance.models.tflite_to_onnx import convert_tflite, output_layout, serialize
from tests.litert_reference import run_litert
from tests.tflite_builder import TinyModel

Op = schema.BuiltinOperator
Opts = schema.BuiltinOptions


def compare(raw: bytes, x: np.ndarray, *, atol: float = 1e-5) -> np.ndarray:
    """Run both; the ONNX output (converted back to NHWC when it is NCHW) must match."""
    ref = next(iter(run_litert(raw, x).values()))
    session = ort.InferenceSession(serialize(convert_tflite(raw, "tiny")),
                                   providers=["CPUExecutionProvider"])
    feed = x.transpose(0, 3, 1, 2).copy() if x.ndim == 4 else x
    out = session.run(None, {session.get_inputs()[0].name: feed})[0]
    if output_layout(ref.shape) == "nchw":
        out = out.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, ref, atol=atol, rtol=0)
    return out


@pytest.mark.parametrize("shape", [(1, 4, 4, 3), (1, 3)])
def test_prelu_is_exact_for_slopes_above_one_and_negative(shape: tuple[int, ...]) -> None:
    """max(alpha*x, x) would be wrong for alpha > 1; ours is bit-exact for any alpha.

    4-D inputs take the per-channel convolution form, others the elementwise form.
    """
    alpha = np.asarray([2.5, -0.5, 0.3], dtype=np.float32).reshape((1,) * (len(shape) - 2)
                                                                    + (1, 3))[0]
    m = TinyModel()
    x, a, y = m.tensor(shape), m.tensor(alpha.shape, data=alpha), m.tensor(shape)
    m.op(Op.PRELU, [x, a], [y])
    raw = m.finish([x], [y])
    inp = np.random.default_rng(1).uniform(-2, 2, shape).astype(np.float32)
    inp[..., 0] = -np.abs(inp[..., 0]) - 0.1  # negative inputs where the slope is 2.5
    inp.flat[1] = 0.0
    out = compare(raw, inp, atol=0)
    expected = np.where(inp >= 0, inp, alpha * inp)
    np.testing.assert_array_equal(out, expected)
    assert not np.allclose(out, np.maximum(alpha * inp, inp))


@pytest.mark.parametrize(("align", "half"), [(False, False), (True, False), (False, True)])
def test_resize_bilinear_coordinate_rules(align: bool, half: bool) -> None:
    m = TinyModel()
    x, size, y = m.tensor((1, 5, 7, 2)), m.tensor((2,), np.int32, np.asarray([9, 16])), \
        m.tensor((1, 9, 16, 2))
    opts = schema.ResizeBilinearOptionsT()
    opts.alignCorners, opts.halfPixelCenters = align, half
    m.op(Op.RESIZE_BILINEAR, [x, size], [y], Opts.ResizeBilinearOptions, opts)
    compare(m.finish([x], [y]), np.random.default_rng(2).normal(size=(1, 5, 7, 2))
            .astype(np.float32))


@pytest.mark.parametrize("keep", [True, False])
def test_mean_over_spatial_axes(keep: bool) -> None:
    m = TinyModel()
    x = m.tensor((1, 6, 5, 4))
    axes = m.tensor((2,), np.int32, np.asarray([1, 2]))
    y = m.tensor((1, 1, 1, 4) if keep else (1, 4))
    opts = schema.ReducerOptionsT()
    opts.keepDims = keep
    m.op(Op.MEAN, [x, axes], [y], Opts.ReducerOptions, opts)
    compare(m.finish([x], [y]), np.random.default_rng(3).normal(size=(1, 6, 5, 4))
            .astype(np.float32))


def test_depth_to_space_channel_order() -> None:
    m = TinyModel()
    x, y = m.tensor((1, 3, 4, 8)), m.tensor((1, 6, 8, 2))
    opts = schema.DepthToSpaceOptionsT()
    opts.blockSize = 2
    m.op(Op.DEPTH_TO_SPACE, [x], [y], Opts.DepthToSpaceOptions, opts)
    compare(m.finish([x], [y]), np.arange(96, dtype=np.float32).reshape(1, 3, 4, 8), atol=0)


def test_average_pool_same_padding_excludes_the_border() -> None:
    m = TinyModel()
    x, y = m.tensor((1, 5, 5, 3)), m.tensor((1, 3, 3, 3))
    opts = schema.Pool2DOptionsT()
    opts.padding, opts.strideW, opts.strideH = schema.Padding.SAME, 2, 2
    opts.filterWidth, opts.filterHeight = 3, 3
    m.op(Op.AVERAGE_POOL_2D, [x], [y], Opts.Pool2DOptions, opts)
    compare(m.finish([x], [y]), np.random.default_rng(4).normal(size=(1, 5, 5, 3))
            .astype(np.float32))


def test_conv_with_fp16_weights_fused_relu6_and_channel_pad() -> None:
    rng = np.random.default_rng(5)
    m = TinyModel()
    x = m.tensor((1, 7, 7, 3))
    w16 = m.tensor((4, 3, 3, 3), np.float16, rng.normal(size=(4, 3, 3, 3)).astype(np.float16))
    w = m.tensor((4, 3, 3, 3))
    b = m.tensor((4,), data=rng.normal(size=4).astype(np.float32))
    c = m.tensor((1, 4, 4, 4))
    pads = m.tensor((4, 2), np.int32, np.asarray([[0, 0], [0, 0], [0, 0], [0, 2]]))
    y = m.tensor((1, 4, 4, 6))
    m.op(Op.DEQUANTIZE, [w16], [w])
    opts = schema.Conv2DOptionsT()
    opts.padding, opts.strideW, opts.strideH = schema.Padding.SAME, 2, 2
    opts.dilationWFactor = opts.dilationHFactor = 1
    opts.fusedActivationFunction = schema.ActivationFunctionType.RELU6
    m.op(Op.CONV_2D, [x, w, b], [c], Opts.Conv2DOptions, opts)
    m.op(Op.PAD, [c, pads], [y])
    out = compare(m.finish([x], [y]), rng.normal(size=(1, 7, 7, 3)).astype(np.float32) * 3)
    assert out.max() <= 6 and np.all(out[..., 4:] == 0)


def _csr(segments: list[int], indices: list[int]) -> Any:
    meta = schema.DimensionMetadataT()
    meta.format = schema.DimensionType.SPARSE_CSR
    meta.arraySegmentsType = meta.arrayIndicesType = schema.SparseIndexVector.Int32Vector
    meta.arraySegments, meta.arrayIndices = schema.Int32VectorT(), schema.Int32VectorT()
    meta.arraySegments.values, meta.arrayIndices.values = segments, indices
    return meta


def _dense(size: int) -> Any:
    meta = schema.DimensionMetadataT()
    meta.format, meta.denseSize = schema.DimensionType.DENSE, size
    return meta


def test_densify_block_sparse_weights_match_litert() -> None:
    """A 4x4 constant in 2x2 blocks (only the diagonal blocks stored), densified and added."""
    dense = np.zeros((4, 4), dtype=np.float32)
    dense[:2, :2] = [[1, 2], [3, 4]]
    dense[2:, 2:] = [[5, 6], [7, 8]]
    sparsity = schema.SparsityParametersT()
    sparsity.traversalOrder = [0, 1, 2, 3]
    sparsity.blockMap = [0, 1]
    sparsity.dimMetadata = [_dense(2), _csr([0, 1, 2], [0, 1]), _dense(2), _dense(2)]
    m = TinyModel()
    stored = m.sparse_tensor((4, 4), np.asarray([1, 2, 3, 4, 5, 6, 7, 8], np.float32), sparsity)
    weights, x, y = m.tensor((4, 4)), m.tensor((4, 4)), m.tensor((4, 4))
    m.op(Op.DENSIFY, [stored], [weights])
    m.op(Op.ADD, [x, weights], [y])
    raw = m.finish([x], [y])
    inp = np.zeros((4, 4), np.float32)
    ref = next(iter(run_litert(raw, inp).values()))
    np.testing.assert_array_equal(ref, dense)  # LiteRT agrees on what the storage means
    session = ort.InferenceSession(serialize(convert_tflite(raw, "tiny")),
                                   providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {session.get_inputs()[0].name: inp})[0],
                                  dense)


def test_unsupported_op_is_named_with_model_and_operator_index() -> None:
    m = TinyModel()
    x, y, z = m.tensor((1, 4)), m.tensor((1, 4)), m.tensor((1, 4))
    m.op(Op.RELU, [x], [y])
    m.op(Op.SOFTMAX, [y], [z])
    with pytest.raises(ConversionError,
                       match=r"unsupported TFLite op SOFTMAX in model tiny \(operator #1\)"):
        convert_tflite(m.finish([x], [z]), "tiny")


def test_garbage_is_not_a_tflite_model() -> None:
    with pytest.raises(ConversionError, match="model junk"):
        convert_tflite(b"\x00" * 64, "junk")
