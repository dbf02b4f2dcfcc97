"""The baby predictor's warp: both parents' working images resampled through per-pixel maps.

Why a graph: the per-pixel sampling (bilinear, 2 x 1024 x 1024 x 4 channels) is the heavy,
regular part of the warp and runs on ONNX Runtime's threads here and as a TensorRT engine on a
Jetson. The maps themselves (which triangle covers each output pixel, and its affine map) are
computed in NumPy from the fixed triangulation (``appliance.effects.baby_parts.warp_maps``).

Inputs: ``images`` uint8 (2, S, S, 4) BGR plus person mask, NHWC as OpenCV holds them;
``grid`` float32 (2, S, S, 2), GridSample's normalised (x, y) in [-1, 1] (align_corners=0).
Output: ``warped`` float32 (2, S, S, 4), NHWC. Static shapes: the backends allocate their
buffers once.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

SIZE = 1024
BATCH = 2
CHANNELS = 4
OPSET = 17
PRODUCER = "ephemera-graphs"
NAME = "baby_warp"
ONNX_SHA256 = "081f95e416ea50827cd7132c28dab84d15e59f54692a728dfe925cd96d44841b"


def build_baby_warp(size: int = SIZE) -> onnx.ModelProto:
    """uint8 NHWC images + normalised grid -> bilinear samples (border padding), float NHWC."""
    nodes = [
        helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Transpose", ["images_f"], ["images_nchw"], perm=[0, 3, 1, 2],
                         name="to_nchw"),
        helper.make_node("GridSample", ["images_nchw", "grid"], ["warped_nchw"],
                         mode="bilinear", padding_mode="border", align_corners=0,
                         name="sample"),
        helper.make_node("Transpose", ["warped_nchw"], ["warped"], perm=[0, 2, 3, 1],
                         name="to_nhwc"),
    ]
    graph = helper.make_graph(
        nodes, "baby_warp",
        [helper.make_tensor_value_info("images", TensorProto.UINT8,
                                       [BATCH, size, size, CHANNELS]),
         helper.make_tensor_value_info("grid", TensorProto.FLOAT, [BATCH, size, size, 2])],
        [helper.make_tensor_value_info("warped", TensorProto.FLOAT,
                                       [BATCH, size, size, CHANNELS])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
