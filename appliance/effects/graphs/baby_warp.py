"""The baby predictor's warp: both parents' working images resampled through per-pixel maps.

Why a graph: the per-pixel sampling (bilinear, 2 x 1024 x 1024 x 4 channels) is the heavy,
regular part of the warp and runs on ONNX Runtime's threads here and as a TensorRT engine on a
Jetson. The maps themselves (which triangle covers each output pixel, and its affine map) are
computed in NumPy from the fixed triangulation (``appliance.effects.baby_parts.warp_maps``).

Inputs: ``images`` uint8 (2, S, S, 4) BGR plus person mask, NHWC as OpenCV holds them;
``grid`` float32 (2, H, W, 2), GridSample's normalised (x, y) in [-1, 1] (align_corners=0), for
the window of the portrait where a head can be (``WINDOW``: the backdrop and the blanket around it
need no parent's pixels). Output: ``warped`` float32 (2, H, W, 4), NHWC. Static shapes: the
backends allocate their buffers once.
"""

from __future__ import annotations

import onnx

from appliance.effects.graphs import Graph

SIZE = 1024          # the working squares the parents' photos are resized into
WINDOW = (896, 704)  # rows, columns of the portrait the warp fills: where a head can be
BATCH = 2
CHANNELS = 4
NAME = "baby_warp"


def build_baby_warp(size: int = SIZE) -> onnx.ModelProto:
    """uint8 NHWC images + normalised grid -> bilinear samples (border padding), float NHWC."""
    g = Graph(NAME, doc="both parents warped onto the baby's shape: per-pixel GridSample")
    height, width = WINDOW
    images = g.input("images", "uint8", [BATCH, size, size, CHANNELS])
    grid = g.input("grid", "float32", [BATCH, height, width, 2])
    planes = g.op("Transpose", g.op("Cast", images, to=onnx.TensorProto.FLOAT),
                  perm=[0, 3, 1, 2])
    warped = g.op("GridSample", planes, grid, mode="bilinear", padding_mode="border",
                  align_corners=0)
    g.output(g.op("Transpose", warped, perm=[0, 2, 3, 1]), "warped", "float32",
             [BATCH, height, width, CHANNELS])
    return g.model()
