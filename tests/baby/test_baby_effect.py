"""The registered ``baby`` effect: its declaration, its parameter, a whole run from photo files
(as ``ephemera run baby`` does it) and every bad input refused with nothing left behind."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.effects.registry import get_effect
from appliance.errors import UserFacingError
from appliance.jobs.local_run import run_effect
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline
from tests.helpers.images import astronaut_bgr, two_faces

Photos = dict[str, Path]


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> Photos:
    folder = Path(tmp_path_factory.mktemp("baby-photos"))
    face = astronaut_bgr()
    images = {"a": face, "b": np.ascontiguousarray(face[:, ::-1]),
               "c": cv2.resize(face, None, fx=1.2, fy=1.2, interpolation=cv2.INTER_CUBIC),
               "two": two_faces(), "none": np.full((400, 400, 3), 128, np.uint8)}
    out = {}
    for name, image in images.items():
        out[name] = folder / f"{name}.png"
        cv2.imwrite(str(out[name]), image)
    return out


def job_buffers() -> list[object]:
    """Live secure buffers of jobs (a model's own buffers, owned by the backend, stay)."""
    return [b for b in REGISTRY.live() if not b.owner.startswith("backend:")]


@pytest.fixture
def out_dir(ram_dir: Path) -> Path:
    """Outputs on tmpfs (``ephemera run`` refuses disk), removed after the test."""
    return ram_dir


def test_declared_as_the_contract_says() -> None:
    effect = get_effect("baby")
    assert effect.photos == (2, 2) and effect.faces == 2
    assert effect.gates == frozenset({"eyes_open"})
    assert [o.name for o in effect.outputs] == ["baby.jpg"]
    assert effect.outputs[0].media_type == "image/jpeg"
    (param,) = effect.params
    assert (param.name, param.kind, param.default, param.minimum, param.maximum) == (
        "resemblance", "float", 0.5, 0.0, 1.0)
    assert effect.faces_per_photo(effect.validate_params({}), 2) == 1


@pytest.mark.parametrize("raw", [-0.1, 1.5, "half", "\u00bd", True])
def test_resemblance_out_of_range_is_refused(raw: object) -> None:
    with pytest.raises(UserFacingError) as err:
        get_effect("baby").validate_params({"resemblance": raw})
    assert err.value.code == "bad_param" and err.value.status == 400
    assert "resemblance" in err.value.message


def test_a_run_makes_one_portrait_and_the_same_one_again(
        photo_files: Photos, pipeline: FacePipeline, out_dir: Path) -> None:
    effect = get_effect("baby")
    before = len(job_buffers())
    first = run_effect(effect, [photo_files["a"], photo_files["c"]], {"resemblance": "0.3"},
                       out_dir / "1", pipeline)
    run_effect(effect, [photo_files["a"], photo_files["c"]], {"resemblance": 0.3},
               out_dir / "2", pipeline)
    assert [o["name"] for o in first["outputs"]] == ["baby.jpg"]
    one, two = ((out_dir / d / "baby.jpg").read_bytes() for d in ("1", "2"))
    assert one[:3] == b"\xff\xd8\xff" and one == two  # deterministic: no seed
    image = cv2.imdecode(np.frombuffer(one, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (1024, 1024, 3)
    assert len(job_buffers()) == before


@pytest.mark.parametrize("names,code,status", [
    (["a"], "wrong_photo_count", 400),
    (["a", "b", "c"], "wrong_photo_count", 400),
    (["a", "none"], "no_face", 422),
    (["two", "a"], "too_many_faces", 422),
])
def test_bad_input_is_refused_and_nothing_is_kept(
        photo_files: Photos, pipeline: FacePipeline, out_dir: Path, names: list[str],
        code: str, status: int) -> None:
    before = len(job_buffers())
    with pytest.raises(UserFacingError) as err:
        run_effect(get_effect("baby"), [photo_files[n] for n in names], {}, out_dir / "x",
                   pipeline)
    assert (err.value.code, err.value.status) == (code, status)
    assert err.value.message and err.value.remedy
    assert not (out_dir / "x" / "baby.jpg").exists()
    assert len(job_buffers()) == before
