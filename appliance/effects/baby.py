"""The baby predictor: two parents' faces morphed into one baby portrait.

Two photos, one face each (eyes open); ``resemblance`` from 0 (all parent A, the first photo)
to 1 (all parent B). Deterministic: no seed, the same photos and resemblance give the same baby.
How it is made (``appliance.effects.baby_parts``): both meshes frontalised and aligned on the
eye corners, averaged by resemblance, given a one-year-old's proportions (published
anthropometry, see ``baby_parts.shape``), both photos warped onto that shape over MediaPipe's
fixed triangulation (a generated GridSample graph), skin tones matched in CIELAB, blended,
retouched softly, with fine hair, a blanket and a studio backdrop. One 1024 x 1024 JPEG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.effects.baby_parts import render
from appliance.effects.baby_parts.person_mask import low_res_mask
from appliance.effects.baby_parts.warp_runner import run_warp
from appliance.effects.base import Effect, EffectRun, OutputSpec, Param, emit_jpeg
from appliance.effects.graphs.baby_warp import NAME as WARP_MODEL
from appliance.models import tessellation

RESULT_NAME = "baby.jpg"


def engines_dir(models: Any) -> Path:
    """Where ``ephemera build`` put the triangle list: the models' own configuration."""
    cfg = getattr(models, "cfg", None)
    if cfg is None:
        from appliance.config import load_config

        cfg = load_config()
    return Path(cfg.models.engines_dir)


def make_baby(job: EffectRun) -> npt.NDArray[np.uint8]:
    """The portrait (1024 x 1024 BGR) in a secure buffer of the job."""
    meshes = [photo.faces[0].mesh for photo in job.photos]
    if len(meshes) != 2 or meshes[0] is None or meshes[1] is None:
        raise ValueError("the baby needs two photos with one meshed face each")
    parents = (render.Parent(job.photos[0].bgr, meshes[0]),
               render.Parent(job.photos[1].bgr, meshes[1]))
    engines = engines_dir(job.models)
    triangles = tessellation.load_triangles(engines)

    def segment(square: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return low_res_mask(job.pipeline, square, job.job_id)

    def warp(feeds: Any) -> Any:
        return run_warp(job.models, feeds)

    return render.render(parents, float(job.params["resemblance"]),
                         triangles, warp, segment, job.job_id)


def run(job: EffectRun) -> None:
    job.progress("morphing", 0.3)
    portrait = make_baby(job)
    job.progress("encoding", 0.9)
    emit_jpeg(job, RESULT_NAME, portrait)


EFFECT = Effect(
    key="baby",
    title="Baby predictor",
    summary="Two parents, one baby: both faces morphed into a baby portrait.",
    photos=(2, 2),
    faces=2,
    gates=frozenset({"eyes_open"}),
    params=(Param("resemblance", "float", 0.5,
                  "0 looks like the first parent, 1 like the second", minimum=0.0,
                  maximum=1.0, label="Looks like the second parent"),),
    outputs=(OutputSpec(RESULT_NAME, "image/jpeg", "Your baby"),),
    models=("face_detection_short", "face_detection_full", "face_landmark",
            "selfie_segmentation", WARP_MODEL),
    run=run,
)
