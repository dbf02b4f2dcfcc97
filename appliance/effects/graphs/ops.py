"""Reusable pixel operations on a ``Graph``: the building blocks of every effect's graphs.

Conventions: images inside a graph are float32 planes ``[1, C, H, W]`` in [0, 1]; at the
graph's edges they are uint8 ``H x W x 3`` BGR, the layout OpenCV decodes and encodes, so the
caller copies no more than one uint8 image in and out. Sizes are static Python integers (the
effects work at a fixed output size), except where a builder says otherwise.

Box filters are running sums (``CumSum`` then the difference of two shifted slices): their cost
does not grow with the radius, unlike a pooling window. Borders are handled as OpenCV's
``boxFilter(..., normalize=False, borderType=BORDER_CONSTANT)`` divided by the number of
pixels inside the image, i.e. the mean over the part of the window that lies in the image.
"""

from __future__ import annotations

import numpy as np

from appliance.effects.graphs import Graph

BGR_TO_Y = (0.114, 0.587, 0.299)  # Rec. 601 luma weights in B, G, R order


def window_counts(length: int, radius: int) -> np.ndarray:
    """How many pixels of a (2r+1) window centred on each index lie inside [0, length)."""
    index = np.arange(length)
    return (np.minimum(index + radius, length - 1) - np.maximum(index - radius, 0) + 1
            ).astype(np.float32)


def _box_axis(g: Graph, x: str, radius: int, length: int, axis: int) -> str:
    """Mean over a (2r+1) window along ``axis`` (2: rows, 3: columns) of a 4-D tensor."""
    pads = [0] * 8
    pads[axis] = radius + 1
    pads[4 + axis] = radius
    padded = g.op("Pad", x, g.ints(*pads), mode="constant")
    total = g.op("CumSum", padded, g.ints(axis))
    upper = g.op("Slice", total, g.ints(2 * radius + 1), g.ints(2 * radius + 1 + length),
                 g.ints(axis))
    lower = g.op("Slice", total, g.ints(0), g.ints(length), g.ints(axis))
    shape = [1, 1, 1, 1]
    shape[axis] = length
    counts = g.const(window_counts(length, radius).reshape(shape))
    return g.div(g.sub(upper, lower), counts)


def box(g: Graph, x: str, radius: int, height: int, width: int) -> str:
    """Mean of a (2r+1)^2 window, clipped to the image, of ``[N, C, height, width]``."""
    return _box_axis(g, _box_axis(g, x, radius, width, 3), radius, height, 2)


def bgr_u8_to_planes(g: Graph, image: str) -> str:
    """uint8 H x W x 3 BGR -> float32 [1, 3, H, W] BGR in [0, 1]."""
    planes = g.op("Transpose", g.op("Cast", image, to=1), perm=[2, 0, 1])
    return g.op("Unsqueeze", g.scale(planes, 1.0 / 255.0), g.ints(0))


def planes_to_bgr_u8(g: Graph, planes: str) -> str:
    """float32 [1, 3, H, W] in [0, 1] -> uint8 H x W x 3, rounded to nearest."""
    hwc = g.op("Transpose", g.op("Squeeze", planes, g.ints(0)), perm=[1, 2, 0])
    scaled = g.op("Add", g.clip(g.scale(hwc, 255.0), 0.0, 255.0), g.const(0.5))
    return g.op("Cast", scaled, to=2)  # uint8: truncation of value + 0.5 rounds


def luma(g: Graph, planes: str) -> str:
    """[1, 3, H, W] BGR -> [1, 1, H, W] luma."""
    weights = g.const(np.asarray(BGR_TO_Y, np.float32).reshape(1, 3, 1, 1))
    return g.op("ReduceSum", g.mul(planes, weights), g.ints(1), keepdims=1)


def resize_to(g: Graph, x: str, height: int, width: int, mode: str = "linear") -> str:
    """Resample ``[N, C, h, w]`` to ``height x width`` (half-pixel centres, as OpenCV)."""
    sizes = g.op("Concat", g.op("Slice", g.op("Shape", x), g.ints(0), g.ints(2), g.ints(0)),
                 g.ints(height, width), axis=0)
    return g.op("Resize", x, "", "", sizes, mode=mode,
                coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75)


def block_mean(g: Graph, x: str, factor: int) -> str:
    """Mean of each ``factor x factor`` block: exact shrinking by a whole factor."""
    if factor == 1:
        return x
    return g.op("AveragePool", x, kernel_shape=[factor, factor], strides=[factor, factor])


def guided_coefficients(g: Graph, guide: str, source: str, radius: int, eps: float,
                        height: int, width: int) -> tuple[str, str]:
    """He et al.'s guided filter with a one-channel guide: box-averaged (a, b) of
    q = a * guide + b, fitted per window of radius ``radius`` with regularisation ``eps``."""
    mean_i = box(g, guide, radius, height, width)
    mean_p = box(g, source, radius, height, width)
    corr_ip = box(g, g.mul(guide, source), radius, height, width)
    corr_ii = box(g, g.mul(guide, guide), radius, height, width)
    var_i = g.sub(corr_ii, g.mul(mean_i, mean_i))
    cov_ip = g.sub(corr_ip, g.mul(mean_i, mean_p))
    a = g.div(cov_ip, g.op("Add", var_i, g.const(eps)))
    b = g.sub(mean_p, g.mul(a, mean_i))
    return box(g, a, radius, height, width), box(g, b, radius, height, width)


def colour_guided_coefficients(g: Graph, guide: str, source: str, radius: int, eps: float,
                               height: int, width: int) -> tuple[str, str]:
    """He et al.'s guided filter with a colour guide ``[1, 3, h, w]`` and a one-channel source:
    box-averaged a ``[1, 3, h, w]`` and b ``[1, 1, h, w]`` of q = a . I + b. Each window's 3 x 3
    colour covariance (+ eps) is inverted in closed form (cofactors), so an edge between two
    colours of equal brightness still separates (hair against a same-brightness wall)."""
    def channel(x: str, i: int) -> str:
        return g.op("Slice", x, g.ints(i), g.ints(i + 1), g.ints(1))

    colours = [channel(guide, i) for i in range(3)]
    means = [box(g, c, radius, height, width) for c in colours]
    mean_p = box(g, source, radius, height, width)

    def cov(i: int, j: int) -> str:
        both = box(g, g.mul(colours[i], colours[j]), radius, height, width)
        value = g.sub(both, g.mul(means[i], means[j]))
        return g.op("Add", value, g.const(eps)) if i == j else value

    s00, s01, s02, s11, s12, s22 = cov(0, 0), cov(0, 1), cov(0, 2), cov(1, 1), cov(1, 2), \
        cov(2, 2)
    cov_p = [g.sub(box(g, g.mul(c, source), radius, height, width), g.mul(m, mean_p))
             for c, m in zip(colours, means, strict=True)]
    c00 = g.sub(g.mul(s11, s22), g.mul(s12, s12))
    c01 = g.sub(g.mul(s02, s12), g.mul(s01, s22))
    c02 = g.sub(g.mul(s01, s12), g.mul(s02, s11))
    c11 = g.sub(g.mul(s00, s22), g.mul(s02, s02))
    c12 = g.sub(g.mul(s01, s02), g.mul(s00, s12))
    c22 = g.sub(g.mul(s00, s11), g.mul(s01, s01))
    det = g.add(g.add(g.mul(s00, c00), g.mul(s01, c01)), g.mul(s02, c02))
    rows = ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))
    coeffs = [g.div(g.add(g.add(g.mul(r0, cov_p[0]), g.mul(r1, cov_p[1])), g.mul(r2, cov_p[2])),
                    det) for r0, r1, r2 in rows]
    b = g.sub(mean_p, g.add(g.add(g.mul(coeffs[0], means[0]), g.mul(coeffs[1], means[1])),
                            g.mul(coeffs[2], means[2])))
    a = g.op("Concat", *[box(g, c, radius, height, width) for c in coeffs], axis=1)
    return a, box(g, b, radius, height, width)


def fast_guided_filter(g: Graph, guide_full: str, source_low: str, factor: int, radius: int,
                       eps: float, height: int, width: int) -> str:
    """Fast guided filter: coefficients fitted at 1/``factor`` size, applied at full size.

    ``guide_full`` is ``[1, 1, height, width]``; ``source_low`` is ``[1, C, height/factor,
    width/factor]`` (e.g. a low-resolution mask resized there). Returns ``[1, C, height,
    width]`` whose edges follow the full-resolution guide.
    """
    low_h, low_w = height // factor, width // factor
    guide_low = block_mean(g, guide_full, factor)
    a, b = guided_coefficients(g, guide_low, source_low, radius, eps, low_h, low_w)
    a_full = resize_to(g, a, height, width)
    b_full = resize_to(g, b, height, width)
    return g.add(g.mul(a_full, guide_full), b_full)


def estimate_foreground(g: Graph, image: str, alpha: str, radius: int, height: int,
                        width: int, factor: int = 1, eps: float = 1e-4) -> str:
    """Foreground colours without the old background's bleed (one level of Forte 2021):
    F = Fm + alpha * (I - alpha * Fm - (1 - alpha) * Bm), with Fm and Bm the alpha- and
    (1 - alpha)-weighted local means of the image (computed at 1/``factor`` size with
    ``radius`` in those pixels, then resized up: they are smooth by construction)."""
    low_h, low_w = height // factor, width // factor
    one = g.const(1.0)
    beta = g.sub(one, alpha)

    def weighted_mean(weight: str) -> str:
        num = box(g, block_mean(g, g.mul(weight, image), factor), radius, low_h, low_w)
        den = box(g, block_mean(g, weight, factor), radius, low_h, low_w)
        mean = g.div(num, g.op("Add", den, g.const(eps)))
        return mean if factor == 1 else resize_to(g, mean, height, width)

    fg_mean = weighted_mean(alpha)
    bg_mean = weighted_mean(beta)
    residual = g.sub(g.sub(image, g.mul(alpha, fg_mean)), g.mul(beta, bg_mean))
    return g.clip(g.add(fg_mean, g.mul(alpha, residual)), 0.0, 1.0)


def hwc_float(g: Graph, image: str) -> str:
    """uint8 H x W x 3 -> float32 H x W x 3 in [0, 255] (channels last: no transpose)."""
    return g.op("Cast", image, to=1)


def hwc_to_u8(g: Graph, hwc: str) -> str:
    """float32 H x W x C in [0, 255] -> uint8, clipped and rounded to nearest."""
    return g.op("Cast", g.op("Add", g.clip(hwc, 0.0, 255.0), g.const(0.5)), to=2)


def hwc_luma(g: Graph, hwc: str, height: int, width: int) -> str:
    """float H x W x 3 BGR -> [1, 1, H, W] luma (same memory as H x W x 1)."""
    weights = g.const(np.asarray(BGR_TO_Y, np.float32).reshape(3, 1))
    return g.op("Reshape", g.op("MatMul", hwc, weights), g.ints(1, 1, height, width))


def hwc_block_mean(g: Graph, hwc: str, factor: int, height: int, width: int) -> str:
    """float H x W x C -> [1, C, H/f, W/f] means of f x f blocks (small: then transposed)."""
    blocks = g.op("Reshape", hwc, g.ints(height // factor, factor, width // factor, factor, -1))
    low = g.op("ReduceMean", blocks, axes=[1, 3], keepdims=0)  # h x w x C
    return g.op("Unsqueeze", g.op("Transpose", low, perm=[2, 0, 1]), g.ints(0))


def planes_to_hwc(g: Graph, planes: str, height: int, width: int) -> str:
    """[1, C, h, w] (small) -> H x W x C resized up (linear), channels last."""
    small = g.op("Transpose", planes, perm=[0, 2, 3, 1])  # [1, h, w, C]
    sizes = g.op("Concat", g.ints(1, height, width),
                 g.op("Slice", g.op("Shape", small), g.ints(3), g.ints(4), g.ints(0)), axis=0)
    up = g.op("Resize", small, "", "", sizes, mode="linear",
              coordinate_transformation_mode="half_pixel")
    return g.op("Squeeze", up, g.ints(0))


def lerp(g: Graph, a: str, b: str, t: str) -> str:
    """a + t * (b - a)."""
    return g.add(a, g.mul(t, g.sub(b, a)))
