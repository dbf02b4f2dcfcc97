"""Skin retouch by frequency separation: even the tone, keep the texture.

out = I + w * (S - L), where L is a small box blur (it holds everything but the finest
texture) and S an edge-aware, strongly smoothed copy (fast guided filter guided by the luma).
Adding S - L swaps the blotchy middle frequencies for S's even ones and leaves I - L, the pore
and fine-line texture, in place. ``w`` is the skin weight map the caller draws from the mesh
(zero on eyes, brows and lips, which therefore stay exactly as sharp as they were).
It runs on the square around the face only: skin outside it is not retouched.
"""

from __future__ import annotations

import onnx

from appliance.effects.graphs import Graph
from appliance.effects.graphs.ops import (
    bgr_u8_to_planes,
    block_mean,
    box,
    fast_guided_filter,
    luma,
    planes_to_bgr_u8,
)

FACE_CROP = 512  # the framed face (about 410 pixels high in the portrait frame) and a margin

FINE_RADIUS = 2  # the texture band kept: finer than a 5 x 5 window
FACTOR = 4
RADIUS = 4  # at 1/4 size: 16 output pixels, blotch scale on a face ~420 pixels high
EPS = 2e-3  # variance below which a window is smoothed (std ~0.045 of full brightness)


def retouch(height: int, width: int, name: str) -> onnx.ModelProto:
    """image uint8 [H, W, 3] BGR + skin float [H, W] in [0, 1] -> retouched uint8 [H, W, 3]."""
    g = Graph(name, doc="frequency-separation skin retouch")
    image = g.input("image", "uint8", [height, width, 3])
    skin = g.input("skin", "float32", [height, width])
    planes = bgr_u8_to_planes(g, image)
    fine = box(g, planes, FINE_RADIUS, height, width)
    smooth = fast_guided_filter(g, luma(g, planes), block_mean(g, planes, FACTOR), FACTOR,
                                RADIUS, EPS, height, width)
    weight = g.op("Reshape", skin, g.ints(1, 1, height, width))
    out = g.add(planes, g.mul(weight, g.sub(smooth, fine)))
    g.output(planes_to_bgr_u8(g, out), "retouched", "uint8", [height, width, 3])
    return g.model()


def retouch_face() -> onnx.ModelProto:
    """Manifest entry ``fx_retouch_face``: the 512 x 512 square around the framed face (the
    framing makes every face the same size, so one size fits)."""
    return retouch(FACE_CROP, FACE_CROP, "fx_retouch_face")
