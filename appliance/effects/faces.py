"""The face-analysis effect: the booth's self-test.

Every face the gates accept, drawn with its box, keypoints and mesh, as one JPEG. It exercises
the whole path an effect takes (decode, detect, mesh, gates, secure buffers, encrypted store,
release) with nothing but the face models, so it is what an operator runs to see the booth work.
"""

from __future__ import annotations

from appliance.effects.base import Effect, EffectRun, OutputSpec, Param, emit_jpeg
from appliance.vision.pipeline import draw_faces

RESULT_NAME = "result.jpg"


def run(job: EffectRun) -> None:
    photo = job.photos[0]
    job.progress("drawing", 0.7)
    annotated = draw_faces(photo.bgr, photo.faces, owner=job.job_id)  # a buffer of the job
    job.progress("encoding", 0.8)
    emit_jpeg(job, RESULT_NAME, annotated)


EFFECT = Effect(
    key="faces",
    title="Face check",
    summary="Finds each face and draws its box, keypoints and mesh: the booth's self-test.",
    photos=(1, 1),
    faces=1,
    gates=frozenset(),
    params=(Param("faces", "int", 1, "how many people are in the photo", minimum=1,
                  maximum=2, label="People in the photo"),),
    outputs=(OutputSpec(RESULT_NAME, "image/jpeg", "Faces found"),),
    models=("face_detection_short", "face_detection_full", "face_landmark"),
    run=run,
)
