"""An effect run as a job: gated photos in, each emitted output encrypted into the store at once.

The effect here is written by the test (a module dropped into the effects package, found by the
registry like any other); the pipeline, models, store and buffers are the real ones.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from appliance.jobs.runner import EffectJobRunner

from appliance.config import load_config
from appliance.jobs.job import JobState
from appliance.jobs.manager import JobManager
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.secure.store import RamStore
from appliance.vision.pipeline import MODEL_NAMES, FacePipeline
from tests.helpers.images import encode

pytestmark = pytest.mark.needs_models

EFFECT_MODULE = '''
import numpy as np
from appliance.effects.base import Effect, OutputSpec, Param
from appliance.secure.buffers import REGISTRY

SEEN = {}

def run(job):
    photo = job.photos[0]
    mask = photo.mask()
    SEEN["same_mask"] = photo.mask() is mask
    SEEN["faces"] = len(photo.faces)
    SEEN["params"] = dict(job.params)
    _buf, first = REGISTRY.array((4,), np.uint8, owner=job.job_id, label="first")
    first[:] = (mask > 0.5).mean() * 100
    job.progress("first", 0.5)
    job.emit("first.bin", first, "application/octet-stream")
    SEEN["ready_after_first"] = job.job.result is not None
    _buf, second = REGISTRY.array((8,), np.uint8, owner=job.job_id, label="second")
    second[:] = job.params["level"]
    job.emit("second.bin", memoryview(second), "application/octet-stream")

EFFECT = Effect(key="zz_masked", title="Masked", summary="test", photos=(1, 1), faces=1,
                gates=frozenset({"eyes_open"}),
                params=(Param("level", "int", 3, "a byte", minimum=0, maximum=255),),
                outputs=(OutputSpec("first.bin", "application/octet-stream"),
                         OutputSpec("second.bin", "application/octet-stream")),
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
    runner = EffectJobRunner(FacePipeline(models), store)
    try:
        job, _token = manager.create_job(None, effect.key,
                                         params=effect.validate_params({"level": "9"}))
        data = encode(astronaut_bgr, ".png")
        upload = REGISTRY.allocate(len(data), owner=job.id, label="upload")
        upload.view()[:] = memoryview(data)
        runner.receive(job, upload)
        manager.enqueue(job, runner.work)
        for _ in range(600):
            if job.state in (JobState.DONE, JobState.FAILED):
                break
            time.sleep(0.05)
        assert job.state is JobState.DONE, job.status()
        import appliance.effects.zz_masked as module  # type: ignore[import-not-found]

        seen = module.SEEN
        assert seen == {"same_mask": True, "faces": 1, "params": {"level": 9},
                        "ready_after_first": True}
        assert job.result is not None and job.result.name == "first.bin"
        assert job.status()["result"]["faces"] == 1
        assert sorted(store.names(job.id)) == ["first.bin", "second.bin"]
        second = store.get(job.id, "second.bin", job.key)
        assert bytes(second.view()) == bytes([9]) * 8
        second.release()
        first = store.get(job.id, "first.bin", job.key)
        assert 5 < first.view()[0] < 95  # the astronaut's mask covers part of the frame
        first.release()
        assert manager.release_job(job.id)
        assert REGISTRY.live(job.id) == [] and store.job_ids() == []
    finally:
        manager.close()
        models.close()
