"""Measures the headshot tests share: texture energy, mesh geometry, matte edges."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def luma(bgr: npt.NDArray[np.uint8]) -> F64:
    return bgr.astype(np.float64) @ np.array([0.114, 0.587, 0.299])


def high_energy(bgr: npt.NDArray[np.uint8], region: npt.NDArray[np.bool_]) -> float:
    """mean |Y - G(1.5) * Y|^2 over ``region``: the skin's fine texture."""
    y = luma(bgr)
    return float(np.mean((y - cv2.GaussianBlur(y, (0, 0), 1.5))[region] ** 2))


def blotch_energy(bgr: npt.NDArray[np.uint8], region: npt.NDArray[np.bool_]) -> float:
    """Variance of the middle frequencies (G(2) - G(12)): uneven tone, not texture."""
    y = luma(bgr)
    band = cv2.GaussianBlur(y, (0, 0), 2.0) - cv2.GaussianBlur(y, (0, 0), 12.0)
    return float(np.mean(band[region] ** 2))


def normalised_geometry(points: npt.NDArray[np.float32]) -> F64:
    """The mesh's (x, y) with translation and scale removed: centred, and scaled so that the
    root-mean-square distance of the points from their centre is 1."""
    xy = points[:, :2].astype(np.float64)
    xy = xy - xy.mean(axis=0)
    return xy / np.sqrt(np.mean(np.sum(xy * xy, axis=1)))


def geometry_distance(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Procrustes distance of two meshes' shapes: the mean point distance after the best
    translation, scale and rotation, in units of the face's RMS radius."""
    pa, pb = normalised_geometry(a), normalised_geometry(b)
    u, _s, vt = np.linalg.svd(pb.T @ pa)
    rotation = u @ vt
    return float(np.mean(np.linalg.norm(pb @ rotation - pa, axis=1)))


def synthetic_composite(height: int, width: int, seed: int) -> tuple[
        npt.NDArray[np.uint8], F64, F64, F64]:
    """A known foreground over a known background through a known alpha with soft, hair-like
    edges: (image, alpha, foreground, background), the last three float in [0, 1]/[0, 255]."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((height, width), np.float64)
    cv2.ellipse(alpha, (width // 2, int(height * 0.42)), (int(width * 0.22), int(height * 0.2)),
                0, 0, 360, 1.0, -1, cv2.LINE_AA)
    cv2.rectangle(alpha, (int(width * 0.15), int(height * 0.6)), (int(width * 0.85), height),
                  1.0, -1)
    strands = np.zeros_like(alpha)
    for _ in range(160):  # hair: thin curved strands leaving the head
        angle = rng.uniform(np.pi * 1.05, np.pi * 1.95)
        x0 = width / 2 + np.cos(angle) * width * 0.2
        y0 = height * 0.42 + np.sin(angle) * height * 0.18
        length = rng.uniform(20, 70)
        x1, y1 = x0 + np.cos(angle) * length, y0 + np.sin(angle) * length
        cv2.line(strands, (int(x0 * 16), int(y0 * 16)), (int(x1 * 16), int(y1 * 16)),
                 rng.uniform(0.5, 1.0), 1, cv2.LINE_AA, 4)
    alpha = np.clip(np.maximum(cv2.GaussianBlur(alpha, (0, 0), 1.2), strands), 0, 1)
    tiles = rng.uniform(60, 200, (20, 16, 3))
    fg = cv2.resize(tiles, (width, height), interpolation=cv2.INTER_CUBIC)
    fg[..., 2] += 30  # warm skin/hair
    bg = np.zeros((height, width, 3))
    bg[:] = (40, 200, 60)  # a green old background: its bleed is easy to see and measure
    bg += cv2.resize(rng.uniform(-25, 25, (8, 6, 3)), (width, height))
    fg, bg = np.clip(fg, 0, 255), np.clip(bg, 0, 255)
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), alpha, fg, bg
