"""Fixtures for the baby predictor: the real models, the built triangle list and warp graph,
and the parents made from scikit-image's photos (a face, its mirror image, a stretched and
tinted copy, the camera man)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from appliance.config import load_config
from appliance.effects.baby_parts import render, warp_runner
from appliance.effects.baby_parts.person_mask import low_res_mask
from appliance.effects.graphs.baby_warp import NAME as WARP
from appliance.models import tessellation
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import MODEL_NAMES, FacePipeline
from tests.vision.faces_support import photo

TALL = 1.3  # parent B: the astronaut stretched vertically (a longer face)
TINT = np.asarray([-12, 0, 22], np.int16)  # and warmer (BGR offsets)


@pytest.fixture(scope="session")
def engines_dir() -> Path:
    path = Path(load_config().models.engines_dir)
    missing = [n for n in MODEL_NAMES if not (path / "onnx" / f"{n}.onnx").is_file()]
    if missing or not tessellation.is_built(path) or not (
            path / "onnx" / f"{WARP}.onnx").is_file():
        pytest.skip("models, triangles or warp graph not built: run `ephemera build`")
    return path


@pytest.fixture(scope="session")
def face_models(engines_dir: Path) -> Iterator[object]:
    from appliance.models.loader import ModelSet

    models = ModelSet(load_config())
    yield models
    models.close()


def tall_warm(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    h, w = image.shape[:2]
    tall = cv2.resize(image, (w, round(h * TALL)), interpolation=cv2.INTER_CUBIC)
    return np.clip(tall.astype(np.int16) + TINT, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def photos() -> dict[str, npt.NDArray[np.uint8]]:
    astronaut = photo("astronaut")
    return {"astronaut": astronaut, "mirror": np.ascontiguousarray(astronaut[:, ::-1]),
            "tall": tall_warm(astronaut), "camera": photo("camera")}


@pytest.fixture(scope="session")
def parents(pipeline: FacePipeline, photos: dict[str, npt.NDArray[np.uint8]]
            ) -> dict[str, render.Parent]:
    out = {}
    for name, image in photos.items():
        faces = pipeline.analyse(image, "baby-fixture", faces_needed=1, need_eyes_open=True)
        out[name] = render.Parent(image, faces[0].mesh.copy())  # type: ignore[union-attr]
    REGISTRY.release_owner("baby-fixture")
    return out


class Portraits:
    """Renders on demand, each once per test session."""

    def __init__(self, pipeline: FacePipeline, models: object, engines: Path,
                 parents: dict[str, render.Parent]) -> None:
        self.pipeline, self.models, self.engines, self.parents = pipeline, models, engines, parents
        self.triangles = tessellation.load_triangles(engines)
        self._cache: dict[tuple[str, str, float, bool], npt.NDArray[np.uint8]] = {}

    def get(self, a: str, b: str, resemblance: float, child: bool = True
            ) -> npt.NDArray[np.uint8]:
        key = (a, b, resemblance, child)
        if key not in self._cache:
            owner = "baby-portraits"
            out = render.render(
                (self.parents[a], self.parents[b]), resemblance, self.triangles,
                lambda feeds: warp_runner.run_warp(self.models, feeds),  # type: ignore[arg-type]
                lambda bgr: low_res_mask(self.pipeline, bgr, owner), owner, child=child)
            self._cache[key] = out.copy()
            REGISTRY.release_owner(owner)
        return self._cache[key]


@pytest.fixture(scope="session")
def portraits(pipeline: FacePipeline, face_models: object, engines_dir: Path,
              parents: dict[str, render.Parent]) -> Portraits:
    return Portraits(pipeline, face_models, engines_dir, parents)
