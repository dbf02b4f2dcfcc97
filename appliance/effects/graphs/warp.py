"""Framing by resampling: crop and resize a photo into a fixed output frame.

Two graphs:

* ``crop_resize`` (the headshot's framing): ``Resize`` in ``tf_crop_and_resize`` mode, bicubic
  (Keys, a = -0.75, as OpenCV's INTER_CUBIC), on uint8 pixels: a sub-pixel crop box of any size
  into the output size. A small source is enlarged smoothly, never blocky. Resize is separable
  and runs on uint8 in ONNX Runtime: several times faster than GridSample on the CPU.
* ``warp_affine``: any affine map (rotation included) by ``GridSample``, for the effects that
  align faces; bicubic GridSample is far slower on the CPU than OpenCV's warpAffine
  (BENCHMARKS.md), so it is used where the rotation is needed.

The source size is dynamic (``src_h`` x ``src_w``, bounded by the manifest's profile); the
caller crops the photo to the region the frame needs first, and shrinks a crop more than 1.25
times the output's scale with an area filter (bicubic sampling alone would alias when
shrinking).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnx

from appliance.effects.graphs import Graph
from appliance.effects.graphs.ops import bgr_u8_to_planes, planes_to_bgr_u8

PORTRAIT = (1280, 1024)  # height, width of the 4:5 output frame


def crop_box_roi(x0: float, y0: float, x1: float, y1: float, src_w: int, src_h: int,
                 out_w: int, out_h: int) -> npt.NDArray[np.float32]:
    """The ``roi`` input of ``crop_resize`` for output pixel centres spanning the source box
    whose first and last output pixel centres land on (x0, y0) and (x1, y1) (source pixel
    coordinates, pixel centres at integers)."""
    del out_w, out_h  # the mapping is fixed by the two end points
    sx, sy = max(src_w - 1, 1), max(src_h - 1, 1)
    return np.array([0.0, y0 / sy, x0 / sx, 0.0, 1.0, y1 / sy, x1 / sx, 1.0], np.float32)


def crop_resize(height: int, width: int, name: str) -> onnx.ModelProto:
    """image uint8 [src_h, src_w, 3] + roi float [8] -> uint8 [height, width, 3] (bicubic)."""
    g = Graph(name, doc=f"bicubic crop-and-resize into {width}x{height}")
    image = g.input("image", "uint8", ["src_h", "src_w", 3])
    roi = g.input("roi", "float32", [8])
    batch = g.op("Unsqueeze", image, g.ints(0))
    resized = g.op("Resize", batch, roi, "", g.ints(1, height, width, 3), mode="cubic",
                   coordinate_transformation_mode="tf_crop_and_resize", cubic_coeff_a=-0.75,
                   extrapolation_value=0.0)
    g.output(g.op("Squeeze", resized, g.ints(0)), "framed", "uint8", [height, width, 3])
    return g.model()


def normalised_matrix(out_to_src: npt.NDArray[np.float64], src_w: int,
                      src_h: int) -> npt.NDArray[np.float32]:
    """A 2 x 3 map from output pixels to source pixels -> ``warp_affine``'s ``matrix`` input,
    which maps output pixels to GridSample's normalised source coordinates (align_corners 0)."""
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


def frame_portrait() -> onnx.ModelProto:
    """Manifest entry ``fx_frame_portrait``: any source crop into the 1024 x 1280 frame."""
    return crop_resize(PORTRAIT[0], PORTRAIT[1], "fx_frame_portrait")


def warp_portrait() -> onnx.ModelProto:
    """Manifest entry ``fx_warp_portrait``: any affine map of a source into 1024 x 1280."""
    return warp_affine(PORTRAIT[0], PORTRAIT[1], "fx_warp_portrait")
