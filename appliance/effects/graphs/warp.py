"""Affine warps by GridSample: crop, rotate and resize a photo into a fixed output frame.

Why one graph for the three: the headshot's framing (and the other effects' alignment) is one
affine map from output pixels to source pixels; sampling once with a bicubic kernel enlarges a
small source smoothly (never blocky) and avoids resampling twice. The source size is dynamic
(``src_h`` x ``src_w``, bounded by the manifest's profile); the caller crops the photo to the
region the frame needs first, and shrinks a crop more than twice the output size with an
area filter (bicubic sampling alone would alias when shrinking by more than two).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx

from appliance.effects.graphs import Graph
from appliance.effects.graphs.ops import bgr_u8_to_planes, planes_to_bgr_u8

PORTRAIT = (1280, 1024)  # height, width of the 4:5 output frame


def normalised_matrix(out_to_src: npt.NDArray[np.float64], src_w: int,
                      src_h: int) -> npt.NDArray[np.float32]:
    """A 2 x 3 map from output pixels to source pixels -> the graph's ``matrix`` input, which
    maps output pixels to GridSample's normalised source coordinates (align_corners = 0)."""
    norm = np.array([[2.0 / src_w, 0.0, 1.0 / src_w - 1.0],
                     [0.0, 2.0 / src_h, 1.0 / src_h - 1.0]])
    full = np.vstack([np.asarray(out_to_src, np.float64), [0.0, 0.0, 1.0]])
    return (norm @ full).astype(np.float32)


def warp_affine(height: int, width: int, name: str, mode: str = "bicubic") -> onnx.ModelProto:
    """image uint8 [src_h, src_w, 3] BGR + matrix float [2, 3] -> warped uint8 [height, width,
    3]; outside the source the border pixels are repeated."""
    g = Graph(name, doc=f"affine warp by GridSample ({mode}) into {width}x{height}")
    image = g.input("image", "uint8", ["src_h", "src_w", 3])
    matrix = g.input("matrix", "float32", [2, 3])
    planes = bgr_u8_to_planes(g, image)
    coeffs = g.op("Reshape", matrix, g.ints(6))

    def coeff(i: int) -> str:
        return g.op("Slice", coeffs, g.ints(i), g.ints(i + 1), g.ints(0))

    xs = g.const(np.arange(width, dtype=np.float32).reshape(1, width))
    ys = g.const(np.arange(height, dtype=np.float32).reshape(height, 1))

    def row(i: int) -> str:
        plane = g.add(g.add(g.mul(coeff(3 * i), xs), g.mul(coeff(3 * i + 1), ys)),
                      coeff(3 * i + 2))  # [height, width]
        return g.op("Unsqueeze", plane, g.ints(2))

    grid = g.op("Unsqueeze", g.op("Concat", row(0), row(1), axis=2), g.ints(0))
    warped = g.op("GridSample", planes, grid, mode=mode, padding_mode="border",
                  align_corners=0)
    g.output(planes_to_bgr_u8(g, warped), "warped", "uint8", [height, width, 3])
    return g.model()


def warp_portrait() -> onnx.ModelProto:
    """Manifest entry ``fx_warp_portrait``: any source crop into the 1024 x 1280 frame."""
    return warp_affine(PORTRAIT[0], PORTRAIT[1], "fx_warp_portrait")
