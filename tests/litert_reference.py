"""LiteRT as the reference for parity tests (development dependency ``ai-edge-litert``).

LiteRT does not ship MediaPipe's custom op ``Convolution2DTransposeBias``. To still run the
selfie-segmentation model as a whole in LiteRT, ``with_builtin_transpose_conv`` rewrites that op
into LiteRT's own TRANSPOSE_CONV (which takes a bias as its fourth input): the same computation,
executed by LiteRT's kernel rather than by anything of ours.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

TRANSPOSE_CONV_BIAS = b"Convolution2DTransposeBias"


def with_builtin_transpose_conv(raw: bytes) -> bytes:
    """Return the model with each Convolution2DTransposeBias replaced by TRANSPOSE_CONV + bias."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
    custom = [i for i, c in enumerate(model.operatorCodes)
              if c.builtinCode == schema.BuiltinOperator.CUSTOM
              and c.customCode == TRANSPOSE_CONV_BIAS]
    if not custom:
        return raw
    code = schema.OperatorCodeT()
    code.builtinCode = schema.BuiltinOperator.TRANSPOSE_CONV
    code.deprecatedBuiltinCode = schema.BuiltinOperator.TRANSPOSE_CONV
    code.version = 4
    model.operatorCodes.append(code)
    new_code = len(model.operatorCodes) - 1
    graph = model.subgraphs[0]
    for op in graph.operators:
        if op.opcodeIndex not in custom:
            continue
        padding, stride_w, stride_h = struct.unpack_from("<iii", bytes(op.customOptions))
        x, w, b = (int(i) for i in op.inputs)
        out_shape = np.asarray(graph.tensors[int(op.outputs[0])].shape, dtype=np.int32)
        buf = schema.BufferT()
        buf.data = np.frombuffer(out_shape.tobytes(), dtype=np.uint8)
        model.buffers.append(buf)
        shape_tensor = schema.TensorT()
        shape_tensor.shape = np.asarray([4], dtype=np.int32)
        shape_tensor.type = schema.TensorType.INT32
        shape_tensor.buffer = len(model.buffers) - 1
        shape_tensor.name = b"transpose_conv_output_shape"
        graph.tensors.append(shape_tensor)
        options = schema.TransposeConvOptionsT()
        options.padding = schema.Padding.SAME if padding == 1 else schema.Padding.VALID
        options.strideW, options.strideH = stride_w, stride_h
        op.opcodeIndex = new_code
        op.inputs = np.asarray([len(graph.tensors) - 1, w, x, b], dtype=np.int32)
        op.builtinOptionsType = schema.BuiltinOptions.TransposeConvOptions
        op.builtinOptions = options
        op.customOptions = None
    import flatbuffers

    builder = flatbuffers.Builder(len(raw) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_litert(raw: bytes, nhwc: npt.NDArray[np.float32], threads: int = 1) -> dict[str, Any]:
    """Run the model once in LiteRT (XNNPACK, as MediaPipe does); outputs by tensor name."""
    interp = Interpreter(model_content=with_builtin_transpose_conv(raw), num_threads=threads)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], nhwc)
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()}
