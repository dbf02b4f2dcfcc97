"""The kiss video's per-frame pixel work: two people sampled through their grids, composited.

Why one graph: every output pixel of every frame is a bilinear sample of each person's
premultiplied cut-out at the place the frame's geometry says (approach, tilt, the 2-D turn and
the face's local warps, all folded into one sampling grid per person), then "over" compositing of
the two people onto the backdrop. As a graph it runs on ONNX Runtime here and as a TensorRT
engine on a Jetson. The grids are geometry (coordinates made from the mesh); the guest's pixels
only pass through the graph.

Inputs (H x W the frame, h x w each cut-out; ``back_*`` is drawn first, ``front_*`` over it):

* ``backdrop``  float32 (1, 3, H, W), 0..255
* ``*_rgba``    float32 (1, 4, h, w): colour premultiplied by alpha (0..255), alpha (0..1)
* ``*_grid``    float32 (1, H, W, 2): for each frame pixel, the place in the cut-out to show, in
                GridSample's normalised coordinates (-1 and 1 are the cut-out's outer edges,
                align_corners=0); outside the cut-out is transparent

Output ``frame``: uint8 (H, W, 3), the inputs' channel order (BGR).
"""

from __future__ import annotations

import onnx

from appliance.effects.graphs import Graph

FRAME_WIDTH, FRAME_HEIGHT = 1280, 720
CUT_WIDTH, CUT_HEIGHT = 768, 1024


def _over(g: Graph, prefix: str, under: str) -> str:
    """One person over ``under`` (1, 3, H, W)."""
    sampled = g.op("GridSample", f"{prefix}_rgba", f"{prefix}_grid", mode="bilinear",
                   padding_mode="zeros", align_corners=0)
    colour = g.op("Slice", sampled, g.ints(0), g.ints(3), g.ints(1))
    alpha = g.op("Slice", sampled, g.ints(3), g.ints(4), g.ints(1))
    return g.add(colour, g.mul(under, g.sub(g.const(1.0), alpha)))


def kiss_frame(height: int = FRAME_HEIGHT, width: int = FRAME_WIDTH,
               cut_height: int = CUT_HEIGHT, cut_width: int = CUT_WIDTH) -> onnx.ModelProto:
    """The frame compositor (every dimension fixed: the backends bind their buffers once)."""
    g = Graph("kiss_frame", __doc__ or "")
    g.input("backdrop", "float32", [1, 3, height, width])
    for prefix in ("back", "front"):
        g.input(f"{prefix}_rgba", "float32", [1, 4, cut_height, cut_width])
        g.input(f"{prefix}_grid", "float32", [1, height, width, 2])
    frame = _over(g, "front", _over(g, "back", "backdrop"))
    rounded = g.op("Round", g.clip(frame, 0.0, 255.0))
    hwc = g.op("Transpose", g.op("Squeeze", rounded, g.ints(0)), perm=[1, 2, 0])
    g.output(g.op("Cast", hwc, to=onnx.TensorProto.UINT8), "frame", "uint8",
             [height, width, 3])
    return g.model()
