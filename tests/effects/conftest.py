"""Fixtures for the effects tests: the booth's models (face models and pixel graphs), built by
`ephemera build`; where they have not been built the tests that need them skip with that
instruction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.models.manifest import load_manifest
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline


@pytest.fixture(scope="session")
def face_models() -> Iterator[object]:
    cfg = load_config()
    onnx_dir = Path(cfg.models.engines_dir) / "onnx"
    missing = [n for n in load_manifest().models if not (onnx_dir / f"{n}.onnx").is_file()]
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
