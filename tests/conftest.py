"""Fixtures shared by every test directory.

* ``ram_dir``: a fresh directory on tmpfs (``/dev/shm``), removed afterwards; a RAM store lives
  in ``ram_dir / "store"``. Tests that need one skip where ``/dev/shm`` is not tmpfs.
* ``astronaut_bgr`` / ``camera_bgr``: scikit-image's sample photos as BGR uint8 (real faces,
  nobody's private photo).
* ``consent_headers``: what every upload must carry.
* ``extra_effects_dir``: a second directory of the ``appliance.effects`` package, as if effect
  modules were added to it (name them ``zz_*``; the registry is rescanned before and after).
* ``service``: the real service under gunicorn on a free loopback port (memfd_secret off, so a
  memory scan can see a live job), stopped and its store removed afterwards.

Helpers are imported one way everywhere: ``from tests.helpers.<module> import ...``.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.helpers import images
from tests.helpers import service as svc

SHM = Path("/dev/shm")


@pytest.fixture
def ram_dir() -> Iterator[Path]:
    from appliance.secure.fs import filesystem_type

    if not SHM.is_dir() or filesystem_type(SHM) != "tmpfs":
        pytest.skip("needs /dev/shm on tmpfs")
    path = SHM / f"ephemera-test-{uuid.uuid4().hex}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def astronaut_bgr() -> npt.NDArray[np.uint8]:
    return images.astronaut_bgr()


@pytest.fixture
def camera_bgr() -> npt.NDArray[np.uint8]:
    return images.camera_bgr()


@pytest.fixture
def consent_headers() -> dict[str, str]:
    return dict(svc.CONSENT)


@pytest.fixture
def extra_effects_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import appliance.effects as effects_package
    from appliance.effects import registry

    monkeypatch.setattr(effects_package, "__path__", [*effects_package.__path__, str(tmp_path)])
    registry._discover.cache_clear()
    yield tmp_path
    registry._discover.cache_clear()
    for name in [n for n in sys.modules if n.startswith("appliance.effects.zz_")]:
        del sys.modules[name]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[svc.Service]:
    with svc.running(tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def face_models() -> Iterator[object]:
    """The booth's models (face models and pixel graphs) as `ephemera build` made them; tests
    that need them skip with that instruction where they are not built."""
    from appliance.config import load_config
    from appliance.models.loader import ModelSet
    from appliance.models.manifest import load_manifest

    cfg = load_config()
    onnx_dir = Path(cfg.models.engines_dir) / "onnx"
    missing = [n for n in load_manifest().models if not (onnx_dir / f"{n}.onnx").is_file()]
    if missing:
        pytest.skip(f"models not built ({', '.join(missing)}): run `ephemera build`")
    models = ModelSet(cfg)
    yield models
    models.close()


@pytest.fixture(scope="session")
def pipeline(face_models: object) -> object:
    from appliance.vision.pipeline import FacePipeline

    return FacePipeline(face_models)  # type: ignore[arg-type]


@pytest.fixture
def owner() -> Iterator[str]:
    """A secure-buffer owner id whose buffers are all released after the test."""
    from appliance.secure.buffers import REGISTRY

    job = f"test-{uuid.uuid4().hex}"
    yield job
    REGISTRY.release_owner(job)
