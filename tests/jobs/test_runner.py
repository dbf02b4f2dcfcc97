"""An effect run as a job: a gated photo in, each emitted output encrypted into the store and
listed as ready at once.

The effect here is written by the test (a module dropped into the effects package, found by the
registry like any other); the pipeline, models, store and buffers are the real ones.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from appliance.config import load_config
from appliance.jobs.effect_jobs import EffectJobRunner, declared_outputs
from appliance.jobs.job import JobState
from appliance.jobs.manager import JobManager
from appliance.jobs.photos import FaceRule
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.secure.store import RamStore
from appliance.vision.pipeline import MODEL_NAMES, FacePipeline
from tests.helpers.images import encode

pytestmark = pytest.mark.needs_models

EFFECT_MODULE = '''
import numpy as np
from appliance.effects.base import Effect, OutputSpec, Param
from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY

SEEN = {}
STATUS = None  # set by the test: the job's status as a screen would poll it


def emit_png(job, name, value):
    _buf, pixels = REGISTRY.array((4, 4, 3), np.uint8, owner=job.job_id, label=name)
    pixels[:] = value
    encoded, view = encode_image(pixels, "png", owner=job.job_id)
    job.emit(name, view, "image/png")
    encoded.release()


def run(job):
    photo = job.photos[0]
    mask = photo.mask()
    SEEN["same_mask"] = photo.mask() is mask
    SEEN["faces"] = len(photo.faces)
    SEEN["params"] = dict(job.params)
    job.progress("first", 0.5)
    emit_png(job, "first.png", int((mask > 0.5).mean() * 100))
    SEEN["ready_after_first"] = [o["ready"] for o in STATUS()["outputs"]]
    emit_png(job, "second.png", job.params["level"])

EFFECT = Effect(key="zz_masked", title="Masked", summary="test", photos=(1, 1), faces=1,
                gates=frozenset({"eyes_open"}),
                params=(Param("level", "int", 3, "a byte", minimum=0, maximum=255),),
                outputs=(OutputSpec("first.png", "image/png"),
                         OutputSpec("second.png", "image/png")),
                models=("face_detection_short", "face_landmark", "selfie_segmentation"),
                run=run)
'''


def test_an_effect_runs_as_a_job_and_its_outputs_are_stored_as_emitted(
        extra_effects_dir: Path, ram_dir: Path, astronaut_bgr: npt.NDArray[np.uint8]) -> None:
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(ram_dir / "store")})
    onnx = Path(cfg.models.engines_dir) / "onnx"
    if not all((onnx / f"{name}.onnx").is_file() for name in MODEL_NAMES):
        pytest.skip("models not built: run `ephemera build`")
    (extra_effects_dir / "zz_masked.py").write_text(textwrap.dedent(EFFECT_MODULE))
    from appliance.effects.registry import get_effect

    effect = get_effect("zz_masked")
    store = RamStore.from_config(cfg)
    models = ModelSet(cfg)
    manager = JobManager(cfg, store, models, sweep_interval_s=None)
    runner = EffectJobRunner(FacePipeline(models), store, manager)
    try:
        photo, token = manager.create_photo(None)
        data = encode(astronaut_bgr, ".png")
        upload = REGISTRY.allocate(len(data), owner=photo.scratch_owner, label="upload")
        upload.view()[:] = memoryview(data)
        runner.receive_photo(photo, upload, FaceRule.for_upload(effect))
        params = effect.validate_params({"level": "9"})
        job, _ = manager.create_job(token, effect.key, params=params, photo_ids=[photo.id])
        job.outputs = {o.name: o for o in declared_outputs(effect, params)}
        import appliance.effects.zz_masked as module  # type: ignore[import-not-found]

        module.STATUS = job.status
        manager.enqueue(job, runner.work)
        for _ in range(600):
            if job.state in (JobState.DONE, JobState.FAILED):
                break
            time.sleep(0.05)
        assert job.state is JobState.DONE, job.status()
        assert module.SEEN == {"same_mask": True, "faces": 1, "params": {"level": 9},
                               "ready_after_first": [True, False]}
        assert [(o["name"], o["ready"]) for o in job.status()["outputs"]] == [
            ("first.png", True), ("second.png", True)]
        assert sorted(store.names(job.id)) == ["first.png", "second.png"]
        for name, check in (("second.png", lambda v: v == 9), ("first.png", lambda v: 5 < v < 95)):
            blob = store.get(job.id, name, job.key)
            pixels = cv2.imdecode(blob.view(), cv2.IMREAD_COLOR)
            assert check(int(pixels[0, 0, 0])), name  # the mask covers part of the frame
            pixels.fill(0)
            blob.release()
        assert manager.release_job(job.id)
        assert REGISTRY.live(job.id) == [] and store.job_ids() == [photo.id]
        assert manager.release_photo(photo.id)
        assert store.job_ids() == [] and REGISTRY.live(photo.id) == []
    finally:
        manager.close()
        models.close()
