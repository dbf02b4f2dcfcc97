"""Shared helpers for the model tests: where the built models are, and real test images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from appliance.models.manifest import DEFAULT_MANIFEST, ModelEntry, load_manifest

ENGINES = DEFAULT_MANIFEST.parent


def built(entry: ModelEntry) -> tuple[Path, Path]:
    """(tflite, onnx) paths of a built model; fails with the fix when `make models` was not run."""
    tfl = ENGINES / "cache" / "tflite" / Path(entry.source.member).name
    onnx_path = entry.onnx_path(ENGINES)
    if not (tfl.exists() and onnx_path.exists()):
        pytest.fail(f"model {entry.name} is not built in {ENGINES}: run `make models` "
                    "(or `ephemera build`) first", pytrace=False)
    return tfl, onnx_path


def wheel_path() -> Path:
    source = next(iter(load_manifest().sources.values()))
    path = ENGINES / "cache" / source.wheel
    if not path.exists():
        pytest.fail(f"{path.name} is not cached in {ENGINES / 'cache'}: run `make models` first",
                    pytrace=False)
    return path


def face_crops() -> dict[str, npt.NDArray[np.uint8]]:
    """Real faces from scikit-image's data: RGB uint8 crops around the face."""
    astronaut = data.astronaut()[0:220, 140:360]
    camera = np.stack([data.camera()] * 3, axis=-1)[40:260, 150:370]
    return {"astronaut": np.ascontiguousarray(astronaut), "camera": np.ascontiguousarray(camera)}


def model_input(entry: ModelEntry, image: npt.NDArray[np.uint8] | None,
                seed: int = 0) -> npt.NDArray[np.float32]:
    """NHWC float32 input in the model's normalisation range: a resized image, or random."""
    _, _, h, w = entry.inputs[0].shape
    lo, hi = entry.normalisation
    if image is None:
        return np.random.default_rng(seed).uniform(lo, hi, (1, h, w, 3)).astype(np.float32)
    resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return (resized * (hi - lo) + lo)[None].astype(np.float32)
