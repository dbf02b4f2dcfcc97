"""Backdrops made procedurally (no image files to ship): a studio gradient and outdoor bokeh.

Both are pure functions of the style's numbers (and a fixed seed), so a style's backdrop is
made once per process and reused for every guest.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]


def _rgb(colour: tuple[float, float, float]) -> npt.NDArray[np.float32]:
    return np.asarray(colour[::-1], np.float32)  # RGB in the style file, BGR in memory


def gradient(height: int, width: int, centre: tuple[float, float, float],
             edge: tuple[float, float, float]) -> U8:
    """A studio sweep: a soft pool of light behind the head (upper middle) falling to the
    edge colour, with a small even noise so the JPEG shows no bands."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot((x - width * 0.5) / (width * 0.75), (y - height * 0.38) / (height * 0.8))
    t = np.clip(distance, 0.0, 1.0)[..., None] ** 1.5
    image = _rgb(centre) * (1 - t) + _rgb(edge) * t
    image += np.random.default_rng(5).normal(0.0, 1.2, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def bokeh(height: int, width: int, base_top: tuple[float, float, float],
          base_bottom: tuple[float, float, float],
          colours: list[tuple[float, float, float]], seed: int) -> U8:
    """Out-of-focus outdoors: a sky-to-foliage gradient with soft discs of light."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image: npt.NDArray[Any] = np.broadcast_to(_rgb(base_top) * (1 - t) + _rgb(base_bottom) * t,
                            (height, width, 3)).copy()
    rng = np.random.default_rng(seed)
    small = (height // 4, width // 4)
    lights: npt.NDArray[Any] = np.zeros((*small, 3), np.float32)
    cover: npt.NDArray[Any] = np.zeros(small, np.float32)
    for _ in range(70):
        cx, cy = rng.uniform(0, small[1]), rng.uniform(0, small[0] * 0.8)
        radius = rng.uniform(6, 22)
        pick = colours[int(rng.integers(len(colours)))]
        colour = _rgb((pick[0], pick[1], pick[2]))
        strength = rng.uniform(0.25, 0.7)
        disc = np.zeros(small, np.float32)
        cv2.circle(disc, (int(cx * 16), int(cy * 16)), int(radius * 16), strength, -1,
                   cv2.LINE_AA, 4)
        lights += disc[..., None] * colour
        cover += disc
    lights = cv2.GaussianBlur(lights, (0, 0), 1.5)
    cover = cv2.GaussianBlur(cover, (0, 0), 1.5)
    lights = cv2.resize(lights, (width, height), interpolation=cv2.INTER_CUBIC)
    cover = np.clip(cv2.resize(cover, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)
    image = image * (1 - 0.6 * cover[..., None]) + 0.6 * lights
    image = np.asarray(cv2.GaussianBlur(image, (0, 0), 2.0), np.float32)
    image += rng.normal(0.0, 1.2, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)
