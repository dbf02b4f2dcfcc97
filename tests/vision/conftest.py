"""Fixtures for the face pipeline tests: the real converted models.

The models are the ONNX files `ephemera build` converts from MediaPipe's wheel (CI builds them
before pytest); where they have not been built the model tests skip with that instruction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import MODEL_NAMES, FacePipeline


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
