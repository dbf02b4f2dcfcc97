"""One headshot style: relight the person, composite over the backdrop, grade with a 3D LUT.

Relighting (half-Lambert): E(n) = key * ((n . Lk) * 0.5 + 0.5)^2 + fill * ((n . Lf) * 0.5
+ 0.5)^2, the gains normalised by the caller so that a normal facing the camera keeps its
brightness; the person is multiplied by 1 + w * (E - 1), where w fades the change out at the
mesh's edges and off the person. The normals and w come at 1/4 size (``shading``: nx, ny, nz,
w); the gain is computed there and resized up, as shading is smooth by construction.

The colour grade is a lookup in a dense table (``lut``: L^3 x 3 uint8, BGR out, made once per
style from the style's .cube by ``cube.dense_table``): each channel of the composite is rounded
to L levels and the three indices address one row. The composite is computed in those steps
directly (the backdrop comes scaled, once per style: ``backdrop_steps``). At L = 128 the
rounding step is 2/255, below what an 8-bit JPEG shows, and the lookup is a single Gather:
far cheaper than interpolating at run time.

Images stay in H x W x 3 (channels last) throughout: no transposes of full-size tensors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx

from appliance.effects.graphs import Graph
from appliance.effects.graphs.ops import resize_to
from appliance.effects.graphs.warp import PORTRAIT

SHADE_FACTOR = 4
TABLE_LEVELS = 128


def _half_lambert(g: Graph, normals: str, direction: str) -> str:
    dot = g.op("ReduceSum", g.mul(normals, direction), g.ints(1), keepdims=1)
    soft = g.op("Add", g.scale(dot, 0.5), g.const(0.5))
    return g.mul(soft, soft)


def table_lookup(g: Graph, steps: str, table: str, levels: int) -> str:
    """float H x W x 3 BGR already in table steps [0, L-1] -> uint8 H x W x 3 from the table."""
    steps = g.clip(g.op("Round", steps), 0.0, float(levels - 1))
    weights = g.const(np.array([[levels * levels], [levels], [1]], np.float32))  # b, g, r
    index = g.op("Cast", g.op("MatMul", steps, weights), to=7)  # H x W x 1 int64
    index = g.op("Squeeze", index, g.ints(2))
    return g.op("Gather", table, index, axis=0)


def relight_gain(g: Graph, shading: str, light: str, height: int, width: int) -> str:
    """[4, h, w] shading + light [8] -> gain H x W x 1 at full size."""
    planes = g.op("Unsqueeze", shading, g.ints(0))
    normals = g.op("Slice", planes, g.ints(0), g.ints(3), g.ints(1))
    weight = g.op("Slice", planes, g.ints(3), g.ints(4), g.ints(1))

    def part(start: int, stop: int, shape: tuple[int, ...]) -> str:
        piece = g.op("Slice", light, g.ints(start), g.ints(stop), g.ints(0))
        return g.op("Reshape", piece, g.ints(*shape))

    key = g.mul(part(6, 7, (1, 1, 1, 1)), _half_lambert(g, normals, part(0, 3, (1, 3, 1, 1))))
    fill = g.mul(part(7, 8, (1, 1, 1, 1)), _half_lambert(g, normals, part(3, 6, (1, 3, 1, 1))))
    energy = g.add(key, fill)
    gain = g.op("Add", g.mul(weight, g.op("Sub", energy, g.const(1.0))), g.const(1.0))
    full = resize_to(g, gain, height, width)
    return g.op("Reshape", full, g.ints(height, width, 1))


def style(height: int, width: int, name: str, levels: int = TABLE_LEVELS) -> onnx.ModelProto:
    """foreground, alpha, backdrop, shading, light, lut -> the styled uint8 [H, W, 3] BGR."""
    g = Graph(name, doc="relight, composite over a backdrop, 3D LUT colour grade")
    sh, sw = height // SHADE_FACTOR, width // SHADE_FACTOR
    foreground = g.input("foreground", "uint8", [height, width, 3])
    alpha = g.input("alpha", "float32", [height, width])
    backdrop = g.input("backdrop", "float32", [height, width, 3])  # in table steps
    shading = g.input("shading", "float32", [4, sh, sw])
    light = g.input("light", "float32", [8])
    lut = g.input("lut", "uint8", [levels ** 3, 3])

    gain = relight_gain(g, shading, light, height, width)
    matte = g.op("Reshape", alpha, g.ints(height, width, 1))
    # In table steps: a * F * gain * (L - 1) / 255 + (1 - a) * B; the scale is folded into
    # the one-channel factor and into the backdrop (scaled once per style by the caller).
    factor = g.mul(g.scale(gain, (levels - 1) / 255.0), matte)
    person = g.mul(g.op("Cast", foreground, to=1), factor)
    composite = g.add(person, g.sub(backdrop, g.mul(backdrop, matte)))
    g.output(table_lookup(g, composite, lut, levels), "styled", "uint8", [height, width, 3])
    return g.model()


def backdrop_steps(backdrop: npt.NDArray[np.uint8], levels: int = TABLE_LEVELS
                   ) -> npt.NDArray[np.float32]:
    """A uint8 backdrop as the style graph's ``backdrop`` input (colours in table steps)."""
    return (backdrop.astype(np.float32) * np.float32((levels - 1) / 255.0)).astype(np.float32)


def style_portrait() -> onnx.ModelProto:
    """Manifest entry ``fx_style_portrait``."""
    return style(PORTRAIT[0], PORTRAIT[1], "fx_style_portrait")
