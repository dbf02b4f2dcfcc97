"""The one 12-megapixel test portrait the effect and face benchmarks time."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

WIDTH, HEIGHT = 4000, 3000


def astronaut_12mp(noise_seed: int = 0, mirror: bool = False) -> npt.NDArray[np.uint8]:
    """scikit-image's astronaut scaled to 3000 px high (face ~620 px) on a 4000 x 3000 grey
    canvas (mirrored if asked), with sensor noise (seeded: every run times the same picture)."""
    import skimage.data

    canvas = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    person = cv2.resize(skimage.data.astronaut()[:, :, ::-1], (HEIGHT, HEIGHT),
                        interpolation=cv2.INTER_CUBIC)
    canvas[:, 500:500 + HEIGHT] = person
    if mirror:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    noise = np.random.default_rng(noise_seed).normal(0, 4, canvas.shape)
    return np.clip(canvas + noise, 0, 255).astype(np.uint8)


def jpeg_bytes(bgr: npt.NDArray[np.uint8], quality: int = 90) -> bytes:
    """A phone's JPEG of ``bgr``."""
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()
