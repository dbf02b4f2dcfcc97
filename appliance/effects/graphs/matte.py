"""Person matte at full output resolution: guided-filter refinement and foreground colours.

The segmentation model's 256 x 256 mask is resized to the guide's low resolution, fitted there
as a local linear function of the photo's colour (fast guided filter with a colour guide) and
applied at full resolution, so the edge follows hair and shoulders, also where the two sides
are equally bright. The foreground colours are then estimated
so the old background's colour does not bleed into the edge band when the person is
composited over a new backdrop (no halo): F = Fm + a (I - a Fm - (1 - a) Bm), with Fm and Bm
the alpha- and (1 - alpha)-weighted local colour means (one level of Forte, ICIP 2021),
computed at 1/4 size where they are smooth, and F evaluated at full size. Where alpha is 1, F
is the photo itself.
"""

from __future__ import annotations

import onnx

from appliance.effects.graphs import Graph
from appliance.effects.graphs.ops import (
    box,
    colour_guided_coefficients,
    hwc_block_mean,
    hwc_float,
    hwc_to_u8,
    planes_to_hwc,
    resize_to,
)
from appliance.effects.graphs.warp import PORTRAIT

MASK_SIDE = 256  # the selfie segmentation model's output
FACTOR = 4  # coefficients and colour means at 1/4 size
RADIUS = 5  # at 1/4 size: 20 output pixels, about hair-strand-bundle scale at 1024 x 1280
EPS = 1e-3  # on [0, 1] brightness: lower follows weaker edges
FG_RADIUS = 4  # foreground/background colour means, at 1/4 size
WEIGHT_EPS = 1e-4


def matte(height: int, width: int, name: str, mask_side: int = MASK_SIDE) -> onnx.ModelProto:
    """image uint8 [H, W, 3] BGR + mask float [s, s] -> alpha float [H, W] and foreground
    uint8 [H, W, 3] BGR (the person's colours with the background's removed)."""
    g = Graph(name, doc="guided-filter matte refinement and foreground estimation")
    h, w = height // FACTOR, width // FACTOR
    image = g.input("image", "uint8", [height, width, 3])
    mask = g.input("mask", "float32", [mask_side, mask_side])
    pixels = hwc_float(g, image)  # H x W x 3 in [0, 255]
    colours_low = hwc_block_mean(g, pixels, FACTOR, height, width)  # [1, 3, h, w], 0..255
    guide_low = g.scale(colours_low, 1.0 / 255.0)
    low = resize_to(g, g.op("Reshape", mask, g.ints(1, 1, mask_side, mask_side)), h, w)
    a, b = colour_guided_coefficients(g, guide_low, low, RADIUS, EPS, h, w)
    alpha_low = g.clip(g.add(g.op("ReduceSum", g.mul(a, guide_low), g.ints(1), keepdims=1), b),
                       0.0, 1.0)
    a_full = planes_to_hwc(g, g.scale(a, 1.0 / 255.0), height, width)  # per 0..255 pixel
    b_full = g.op("Reshape", resize_to(g, b, height, width), g.ints(height, width, 1))
    alpha = g.clip(g.add(g.op("ReduceSum", g.mul(a_full, pixels), g.ints(2), keepdims=1),
                         b_full), 0.0, 1.0)  # H x W x 1

    one = g.const(1.0)

    def weighted_mean(weight: str) -> str:
        num = box(g, g.mul(weight, colours_low), FG_RADIUS, h, w)
        den = g.op("Add", box(g, weight, FG_RADIUS, h, w), g.const(WEIGHT_EPS))
        return g.div(num, den)

    fg_mean = weighted_mean(alpha_low)
    bg_mean = weighted_mean(g.sub(one, alpha_low))
    bg_full = planes_to_hwc(g, bg_mean, height, width)
    diff_full = planes_to_hwc(g, g.sub(fg_mean, bg_mean), height, width)
    a_hwc = alpha
    # F = Bm + D + a (I - Bm - a D), D = Fm - Bm (the same formula, fewer full-size passes)
    residual = g.sub(g.sub(pixels, bg_full), g.mul(a_hwc, diff_full))
    foreground = g.add(g.add(bg_full, diff_full), g.mul(a_hwc, residual))
    g.output(g.op("Reshape", alpha, g.ints(height, width)), "alpha", "float32",
             [height, width])
    g.output(hwc_to_u8(g, foreground), "foreground", "uint8", [height, width, 3])
    return g.model()


def matte_portrait() -> onnx.ModelProto:
    """Manifest entry ``fx_matte_portrait``."""
    return matte(PORTRAIT[0], PORTRAIT[1], "fx_matte_portrait")
