"""Fixtures for the face pipeline tests: the real converted models and real photos.

The models are the ONNX files `ephemera build` converts from MediaPipe's wheel (CI builds them
before pytest); where they have not been built the model tests skip with that instruction.
Photos are scikit-image's: astronaut and camera are real faces; coffee, brick and text have
none. Every variant (rotated, scaled, padded, composited, cropped, mirrored) is made here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from appliance.config import load_config
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import MODEL_NAMES, FacePipeline

Image = npt.NDArray[np.uint8]


def _bgr(rgb_or_grey: npt.NDArray[np.uint8]) -> Image:
    if rgb_or_grey.ndim == 2:
        return np.ascontiguousarray(np.stack([rgb_or_grey] * 3, axis=-1))
    return np.ascontiguousarray(rgb_or_grey[:, :, ::-1])


def photo(name: str) -> Image:
    """A scikit-image sample photo as BGR uint8."""
    import skimage.data

    return _bgr(getattr(skimage.data, name)())


# Hand-placed face boxes (x0, y0, x1, y1) in the original photos: forehead to chin, ear to ear
# of the inner face, the region BlazeFace is trained to box.
ASTRONAUT_FACE = (175.0, 65.0, 280.0, 175.0)
CAMERA_FACE = (190.0, 118.0, 275.0, 205.0)


@pytest.fixture(scope="session")
def face_models() -> Iterator[object]:
    cfg = load_config()
    onnx_dir = Path(cfg.models.engines_dir) / "onnx"
    missing = [n for n in MODEL_NAMES if not (onnx_dir / f"{n}.onnx").is_file()]
    if missing:
        pytest.skip(f"models not built ({', '.join(missing)}): run `ephemera build`")
    from appliance.models.loader import ModelSet

    models = ModelSet(cfg)
    yield models
    models.close()


@pytest.fixture(scope="session")
def pipeline(face_models: object) -> FacePipeline:
    return FacePipeline(face_models)  # type: ignore[arg-type]


@pytest.fixture
def owner() -> Iterator[str]:
    job = f"test-{uuid.uuid4().hex}"
    yield job
    REGISTRY.release_owner(job)


def iou(a: tuple[float, ...] | npt.NDArray[np.float32],
        b: tuple[float, ...] | npt.NDArray[np.float32]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def place(canvas: Image, image: Image, x: int, y: int, scale: float) -> tuple[float, float,
                                                                              float, float]:
    """Paste ``image`` scaled by ``scale`` at (x, y); returns the affine (sx, sy, dx, dy)."""
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    canvas[y:y + h, x:x + w] = small
    return scale, scale, float(x), float(y)


def moved(box: tuple[float, float, float, float], scale: float, dx: float,
          dy: float) -> tuple[float, float, float, float]:
    return (box[0] * scale + dx, box[1] * scale + dy, box[2] * scale + dx, box[3] * scale + dy)


def rotate_about(image: Image, degrees: float) -> tuple[Image, npt.NDArray[np.float64]]:
    """Rotate the whole image (canvas grown to fit, grey fill); returns the 2x3 matrix."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    matrix[0, 2] += nw / 2 - w / 2
    matrix[1, 2] += nh / 2 - h / 2
    out = cv2.warpAffine(image, matrix, (nw, nh), borderValue=(128, 128, 128))
    return out, matrix
