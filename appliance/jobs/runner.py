"""Runs a registered effect as a job: decode, gate, run the effect, store what it emits.

decode (in the request thread, so a bad file is refused at once) -> detect + mesh with the
effect's quality gates (in the worker) -> ``effect.run`` -> each output encrypted into the RAM
store as the effect emits it. Every intermediate is a secure buffer owned by the job id, so the
job's release wipes them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.effects.base import Photo
from appliance.effects.registry import get_effect
from appliance.errors import UserFacingError
from appliance.jobs.job import Job, ResultInfo
from appliance.media.decode import ImageLimits, decode_image
from appliance.models.backend import BackendError, ModelProvider
from appliance.secure.buffers import SecureBuffer
from appliance.vision.pipeline import FacePipeline

log = logging.getLogger("ephemera.jobs")


def models_unavailable(exc: Exception) -> UserFacingError:
    log.error("the models cannot run: %s", exc)  # paths and hashes only, never image data
    return UserFacingError(
        "models_unavailable", "The booth's models are not ready.", status=503,
        remedy="Operator: run `ephemera build` (or `make models`), then restart the service. "
               f"({type(exc).__name__}: {exc})")


@dataclass
class JobRun:
    """The ``EffectRun`` of one job: its photos and parameters, and where its outputs go."""

    job: Job
    job_id: str
    photos: list[Photo]
    params: dict[str, Any]
    models: ModelProvider
    pipeline: FacePipeline
    store: Any
    outputs: list[ResultInfo] = field(default_factory=list)

    def progress(self, stage: str, fraction: float) -> None:
        self.job.set_progress(stage, fraction)

    def emit(self, name: str, data: memoryview | npt.NDArray[Any], media_type: str) -> None:
        """Encrypt one output into the store under the job's key; it is ready at once."""
        view = data if isinstance(data, memoryview) else data.data
        if not view.c_contiguous:  # a copy here would be an unwiped copy of the guest's output
            raise ValueError(f"output {name!r} must be a contiguous view of a secure buffer")
        nbytes = view.nbytes
        self.store.put(self.job.id, name, view, self.job.key)
        info = ResultInfo(name, media_type, nbytes)
        self.outputs = [o for o in self.outputs if o.name != name] + [info]
        with self.job.lock:
            if self.job.result is None:
                self.job.result = info


class EffectJobRunner:
    """Decodes uploads and runs the job's effect for the job manager's worker."""

    def __init__(self, pipeline: FacePipeline, store: Any,
                 limits: ImageLimits | None = None) -> None:
        self.pipeline = pipeline
        self.store = store
        self.limits = limits or ImageLimits()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.limits.max_bytes)

    def receive(self, job: Job, upload: SecureBuffer) -> None:
        """Decode the upload (EXIF orientation applied, metadata dropped) into the job."""
        with upload.memoryview() as data:
            _buffer, bgr = decode_image(data, job.id, self.limits)
        upload.release()  # the pixels are all the job needs: the file's bytes go now
        job.images.append(bgr)

    def _photos(self, job: Job, faces_each: int, eyes_open: bool) -> list[Photo]:
        def segment(bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
            return self.pipeline.segment(bgr, job.id)

        photos = []
        for index, bgr in enumerate(job.images):
            job.set_progress("faces", 0.1 + 0.2 * index / len(job.images))
            faces = self.pipeline.analyse(bgr, job.id, faces_needed=faces_each,
                                          need_mesh=True, need_eyes_open=eyes_open)
            photos.append(Photo(bgr, faces, segment=segment))
        return photos

    def work(self, job: Job) -> None:
        effect = get_effect(job.kind)
        effect.check_photo_count(len(job.images))
        faces_each = effect.faces_per_photo(job.params, len(job.images))
        try:
            photos = self._photos(job, faces_each, "eyes_open" in effect.gates)
            run = JobRun(job, job.id, photos, dict(job.params), self.pipeline.models, self.pipeline,
                         self.store)
            effect.run(run)
        except BackendError as exc:
            raise models_unavailable(exc) from None
        if not run.outputs:
            raise RuntimeError(f"the effect {effect.key!r} made no output")
        first = run.outputs[0]
        height, width = photos[0].bgr.shape[:2]
        job.result = ResultInfo(first.name, first.content_type, first.nbytes, {
            "faces": sum(len(p.faces) for p in photos), "width": int(width),
            "height": int(height)})
