"""The kiss video: two people turn towards each other, close their eyes and meet.

Two photos with one face each, or one photo with two faces (then the person on the photo's left
is the first). Both are cut out by the person mask, placed facing each other on a soft backdrop
and animated with eased 2-D warps driven by their face meshes; the frames go straight into an
in-memory H.264 encoder (``appliance.media.video``). Outputs: the MP4 (faststart, so phones start
playing at once) and a poster JPEG from the moment the lips meet.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from appliance.effects.base import Effect, EffectRun, OutputSpec, Param
from appliance.effects.kiss_parts.compose import SIDES, Person, make_kiss
from appliance.secure.buffers import REGISTRY
from appliance.vision.face import Face

VIDEO_NAME = "kiss.mp4"
POSTER_NAME = "poster.jpg"
FPS = 24


def _centre_x(face: Face) -> float:
    return (face.box[0] + face.box[2]) / 2


def people(job: EffectRun) -> tuple[Person, Person]:
    """The two people in the guest's order (one photo: left to right)."""
    if len(job.photos) == 2:
        first, second = job.photos
        return (Person(first.bgr, first.mask(), _mesh(first.faces[0])),
                Person(second.bgr, second.mask(), _mesh(second.faces[0])))
    photo = job.photos[0]
    left, right = sorted(photo.faces[:2], key=_centre_x)
    line = (_centre_x(left) + _centre_x(right)) / 2
    mask = side_masks(job, photo.bgr, line)
    return (Person(photo.bgr, mask, _mesh(left), split=(line, -1.0)),
            Person(photo.bgr, mask, _mesh(right), split=(line, 1.0)))


def side_masks(job: EffectRun, bgr: npt.NDArray[np.uint8],
               line: float) -> npt.NDArray[np.float32]:
    """The person mask of a two-person photo, segmented one side at a time.

    The selfie segmentation model sees the whole photo squeezed into its square input: a wide
    photo of two people comes out nearly empty (about 0.04 on the astronaut side by side with
    herself, against 0.99 alone). Each side of the line between the faces, segmented on its own,
    is one person in a portrait-like crop, which is what the model was made for.
    """
    split = min(max(1, round(line)), bgr.shape[1] - 1)
    _buffer, mask = REGISTRY.array(bgr.shape[:2], np.float32, owner=job.job_id,
                                   label="kiss-two-person-mask")  # released with the job
    for columns in (slice(0, split), slice(split, bgr.shape[1])):
        mask[:, columns] = job.pipeline.segment(bgr[:, columns], job.job_id)
    return mask


def _mesh(face: Face) -> npt.NDArray[np.float32]:
    if face.mesh is None:
        raise ValueError("the kiss needs each face's mesh; the photo was gated without one")
    return face.mesh


def run(job: EffectRun) -> None:
    job.progress("cutting out", 0.05)
    first, second = people(job)

    def progress(stage: str, fraction: float) -> None:
        overall = {"cutting out": 0.08, "rendering": 0.1 + 0.8 * fraction,
                   "encoding": 0.92}.get(stage, 0.5)
        job.progress(stage, overall)

    video = make_kiss(first, second, job.job_id, duration=float(job.params["duration"]),
                      side=str(job.params["side"]), fps=FPS, models=job.models,
                      progress=progress)
    try:
        job.progress("storing", 0.96)
        job.emit(VIDEO_NAME, video.video_bytes, "video/mp4")
        job.emit(POSTER_NAME, video.poster_bytes, "image/jpeg")
    finally:
        video.video_bytes.release()
        video.poster_bytes.release()
        video.video.release()
        video.poster.release()


EFFECT = Effect(
    key="kiss",
    title="Kiss",
    summary="A short video: the two of you turn to each other, close your eyes and kiss.",
    photos=(1, 2),
    faces=2,
    gates=frozenset({"eyes_open"}),
    params=(
        Param("duration", "float", 4.0, "length of the video in seconds", minimum=3,
              maximum=6, label="Video length in seconds"),
        Param("side", "choice", "left", "where the first person stands (the first photo, or "
              "the person on the left of a single photo)", choices=SIDES,
              label="Where the first person stands", choice_labels=("On the left", "On the right")),
    ),
    outputs=(OutputSpec(VIDEO_NAME, "video/mp4", "Kiss video"),
             OutputSpec(POSTER_NAME, "image/jpeg", "Poster")),
    models=("face_detection_short", "face_detection_full", "face_landmark",
            "selfie_segmentation", "fx_kiss_frame"),
    run=run,
)
