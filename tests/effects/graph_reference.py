"""NumPy/OpenCV references for the generated pixel graphs: the same formulas, written the
plain way (OpenCV box filters and resizes), so each graph can be checked on the same inputs."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.ops import BGR_TO_Y

F32 = npt.NDArray[np.float32]


def box(x: F32, radius: int) -> F32:
    """Window mean clipped to the image (OpenCV's unnormalised box / in-image counts)."""
    k = (2 * radius + 1, 2 * radius + 1)
    total = cv2.boxFilter(x, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(np.ones(x.shape[:2], np.float32), -1, k, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    return (total / (count if x.ndim == 2 else count[..., None])).astype(np.float32)


def resize(x: F32, height: int, width: int) -> F32:
    return cv2.resize(x, (width, height), interpolation=cv2.INTER_LINEAR)


def block_mean(x: F32, f: int) -> F32:
    h, w = x.shape[0] // f, x.shape[1] // f
    return x.reshape(h, f, w, f, *x.shape[2:]).mean(axis=(1, 3)).astype(np.float32)


def luma(bgr: F32) -> F32:
    return (bgr @ np.asarray(BGR_TO_Y, np.float32)).astype(np.float32)


def guided(guide: F32, src: F32, radius: int, eps: float) -> tuple[F32, F32]:
    """Box-averaged guided-filter coefficients (a, b) with a one-channel guide."""
    g3 = guide if src.ndim == 2 else guide[..., None]
    mean_i, mean_p = box(guide, radius), box(src, radius)
    mi3 = mean_i if src.ndim == 2 else mean_i[..., None]
    cov = box(g3 * src, radius) - mi3 * mean_p
    var = box(guide * guide, radius) - mean_i * mean_i
    a = cov / ((var if src.ndim == 2 else var[..., None]) + eps)
    b = mean_p - a * mi3
    return box(a, radius), box(b, radius)


def colour_guided(guide: F32, src: F32, radius: int, eps: float) -> tuple[F32, F32]:
    """Box-averaged guided-filter coefficients with a colour guide (h x w x 3): a (h x w x 3),
    b (h x w), each window's 3 x 3 system solved by NumPy."""
    means = box(guide, radius)
    mean_p = box(src, radius)
    cov = np.empty((*src.shape, 3, 3), np.float64)
    for i in range(3):
        for j in range(3):
            cov[..., i, j] = box(guide[..., i] * guide[..., j], radius) - means[..., i] * \
                means[..., j] + (eps if i == j else 0.0)
    cov_p = box(guide * src[..., None], radius) - means * mean_p[..., None]
    a = np.linalg.solve(cov, cov_p[..., None].astype(np.float64))[..., 0].astype(np.float32)
    b = (mean_p - (a * means).sum(axis=-1)).astype(np.float32)
    return box(a, radius), box(b, radius)


def matte(image: npt.NDArray[np.uint8], mask: F32, factor: int, radius: int, eps: float,
          fg_radius: int) -> tuple[F32, F32]:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    size = image.shape[:2]
    pixels = image.astype(np.float32)
    colours = block_mean(pixels, factor)
    guide = colours / 255.0
    a, b = colour_guided(guide, resize(mask, h, w), radius, eps)
    alpha_low = np.clip((a * guide).sum(axis=-1) + b, 0, 1)
    alpha = np.clip((resize(a, *size) / 255.0 * pixels).sum(axis=-1) + resize(b, *size), 0, 1)

    def mean(weight: F32) -> F32:
        return box(weight[..., None] * colours, fg_radius) / (
            box(weight, fg_radius)[..., None] + 1e-4)

    fg, bg = mean(alpha_low), mean(1 - alpha_low)
    bg_full = resize(bg, *size)
    d_full = resize(fg - bg, *size)
    a3 = alpha[..., None]
    foreground = bg_full + d_full + a3 * (pixels - bg_full - a3 * d_full)
    return alpha, np.clip(foreground, 0, 255)


def retouch(image: npt.NDArray[np.uint8], skin: F32, tone_radius: int, factor: int,
            radius: int, eps: float) -> F32:
    planes = image.astype(np.float32) / 255.0
    tone = box(box(planes, tone_radius), tone_radius)
    guide = block_mean(luma(planes), factor)
    a, b = guided(guide, block_mean(planes, factor), radius, eps)
    evened = resize(a * guide[..., None] + b, *image.shape[:2])
    return np.clip((planes + skin[..., None] * (evened - tone)) * 255.0, 0, 255)


def relight_gain(shading: F32, light: F32, height: int, width: int) -> F32:
    normals, weight = shading[:3], shading[3]

    def half_lambert(direction: F32) -> F32:
        soft = np.tensordot(direction, normals, axes=(0, 0)) * 0.5 + 0.5
        return (soft * soft).astype(np.float32)

    energy = light[6] * half_lambert(light[0:3]) + light[7] * half_lambert(light[3:6])
    return resize((1 + weight * (energy - 1)).astype(np.float32), height, width)


def style(foreground: npt.NDArray[np.uint8], alpha: F32, backdrop: npt.NDArray[np.uint8],
          shading: F32, light: F32, table: npt.NDArray[np.uint8], levels: int) -> F32:
    gain = relight_gain(shading, light, *alpha.shape)
    a = alpha[..., None].astype(np.float64)
    comp = (foreground * (gain[..., None] * a) + backdrop * (1 - a)) * (levels - 1) / 255.0
    steps = np.clip(np.round(comp), 0, levels - 1).astype(np.int64)
    index = steps[..., 0] * levels * levels + steps[..., 1] * levels + steps[..., 2]
    return table[index].astype(np.float32)


def cubic_matrix(n_out: int, n_in: int, start: float, step: float,
                 a: float = -0.75) -> npt.NDArray[np.float64]:
    """Keys' bicubic weights (n_out x n_in) sampling at start + i * step, edges clamped."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        x = start + i * step
        base = int(np.floor(x))
        for k in range(base - 1, base + 3):
            d = abs(x - k)
            w = ((a + 2) * d ** 3 - (a + 3) * d ** 2 + 1 if d <= 1
                 else a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0)
            weights[i, min(max(k, 0), n_in - 1)] += w
    return weights


def crop_resize(image: npt.NDArray[np.uint8], x0: float, y0: float, step: float,
                height: int, width: int) -> npt.NDArray[np.float64]:
    """Bicubic sampling of ``image`` at (x0 + i * step, y0 + j * step), float64, separable."""
    rows = cubic_matrix(height, image.shape[0], y0, step)
    cols = cubic_matrix(width, image.shape[1], x0, step)
    along_y = np.tensordot(rows, image.astype(np.float64), axes=(1, 0))  # h x X x c
    return np.einsum("hxc,wx->hwc", along_y, cols, optimize=True)
