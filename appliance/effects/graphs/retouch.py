"""Skin retouch by frequency separation: even the tone, keep the texture.

out = I + w * (S - T). T, the tone layer, is the photo blurred just above the texture's scale
(two 7 x 7 box passes, about a Gaussian of 2.8 pixels): I - T is the texture (pores, fine
lines) and is never touched. S is an evened tone: a guided filter guided by the luma, fitted
and evaluated at 1/4 size (radius ~16 output pixels) and resized up, so it carries no texture
at all. Replacing T by S evens blotches and redness and leaves the texture where it was.
``w`` is the skin weight map the caller draws from the mesh (zero on eyes, brows and lips,
which therefore stay exactly as sharp as they were). It runs on the square around the face.
"""

from __future__ import annotations

import onnx

from appliance.effects.graphs import Graph
from appliance.effects.graphs.ops import (
    bgr_u8_to_planes,
    block_mean,
    box,
    guided_coefficients,
    luma,
    planes_to_bgr_u8,
    resize_to,
)

FACE_CROP = 512  # the framed face (about 410 pixels high in the portrait frame) and a margin

TONE_RADIUS = 3  # two 7 x 7 box passes: just above the texture's scale
FACTOR = 4
RADIUS = 4  # at 1/4 size: 16 output pixels, blotch scale on a face ~420 pixels high
EPS = 2e-3  # variance below which a window is smoothed (std ~0.045 of full brightness)


def retouch(height: int, width: int, name: str) -> onnx.ModelProto:
    """image uint8 [H, W, 3] BGR + skin float [H, W] in [0, 1] -> retouched uint8 [H, W, 3]."""
    g = Graph(name, doc="frequency-separation skin retouch")
    image = g.input("image", "uint8", [height, width, 3])
    skin = g.input("skin", "float32", [height, width])
    planes = bgr_u8_to_planes(g, image)
    tone = box(g, box(g, planes, TONE_RADIUS, height, width), TONE_RADIUS, height, width)
    low_h, low_w = height // FACTOR, width // FACTOR
    guide = block_mean(g, luma(g, planes), FACTOR)
    a, b = guided_coefficients(g, guide, block_mean(g, planes, FACTOR), RADIUS, EPS, low_h,
                               low_w)
    evened = resize_to(g, g.add(g.mul(a, guide), b), height, width)
    change = g.sub(evened, tone)
    weight = g.op("Reshape", skin, g.ints(1, 1, height, width))
    out = g.add(planes, g.mul(weight, change))
    g.output(planes_to_bgr_u8(g, out), "retouched", "uint8", [height, width, 3])
    return g.model()


def retouch_face() -> onnx.ModelProto:
    """Manifest entry ``fx_retouch_face``: the 512 x 512 square around the framed face (the
    framing makes every face the same size, so one size fits)."""
    return retouch(FACE_CROP, FACE_CROP, "fx_retouch_face")
