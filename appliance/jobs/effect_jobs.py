"""Photos in, effect jobs run: the glue between the job manager, the store and the effects.

Two halves, one per thread:

* ``receive_photo`` runs in the request thread: decode (EXIF orientation applied, metadata
  dropped), gate the faces (the models are shared with the worker, so it waits for the running
  job), keep each face's mesh under the photo's owner id and encrypt the pixels into the store.
  Everything else it allocated is wiped before it returns, whatever the outcome.
* ``work`` runs on the manager's single worker: decrypt the job's photos into buffers of the
  job, run the effect with an ``EffectJobRun`` whose outputs go straight into the store, each
  listed as ready the moment it is there.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from appliance.effects.registry import get_effect
from appliance.errors import UserFacingError
from appliance.jobs.effect_run import EffectJobRun, Photo, segmenter
from appliance.jobs.job import Job, OutputInfo
from appliance.jobs.manager import JobManager
from appliance.jobs.photos import PIXELS, FaceRule, StoredPhoto, copy_faces, gate_faces, photo_gone
from appliance.media.decode import ImageLimits, decode_image
from appliance.models.backend import BackendError
from appliance.secure.buffers import REGISTRY, SecureBuffer
from appliance.vision import quality
from appliance.vision.pipeline import FacePipeline

log = logging.getLogger("ephemera.jobs")


def models_unavailable(exc: Exception) -> UserFacingError:
    log.error("the models cannot run: %s", exc)  # paths and hashes only, never image data
    return UserFacingError(
        "models_unavailable", "The booth's models are not ready.", status=503,
        remedy="Operator: run `ephemera build` (or `make models`), then restart the service. "
               f"({type(exc).__name__}: {exc})")


def declared_outputs(effect: Any, params: dict[str, Any]) -> list[OutputInfo]:
    """The outputs an effect will make with these parameters, in its order (none ready yet)."""
    return [OutputInfo(spec.name, spec.media_type, spec.title)
            for spec in effect.outputs_with(params)]


def extra_gates(bgr: Any, faces: list[Any], owner: str, gates: frozenset[str]) -> None:
    """The effect's own gates beyond those every photo passed at upload (eyes open)."""
    if "eyes_open" in gates:
        for face in faces:
            quality.check_face(bgr, face, owner, need_eyes_open=True)


class EffectJobRunner:
    """Receives photos and runs effect jobs for one service process."""

    def __init__(self, pipeline: FacePipeline, store: Any, manager: JobManager,
                 limits: ImageLimits | None = None) -> None:
        self.pipeline = pipeline
        self.store = store
        self.manager = manager
        self.limits = limits or ImageLimits()

    @property
    def max_upload_bytes(self) -> int:
        return int(self.limits.max_bytes)

    # -- photos (request thread) --------------------------------------------------------------

    def receive_photo(self, photo: StoredPhoto, upload: SecureBuffer, rule: FaceRule) -> None:
        """Decode, gate and store one upload; raises the decoder's or a gate's error."""
        scratch = photo.scratch_owner
        try:
            with upload.memoryview() as data:
                decoded, bgr = decode_image(data, scratch, self.limits)
            upload.release()
            try:
                with self.manager.models_in_use():
                    faces = gate_faces(self.pipeline, bgr, scratch, rule)
            except BackendError as exc:
                raise models_unavailable(exc) from None
            photo.faces = copy_faces(faces, photo.id)
            photo.height, photo.width = int(bgr.shape[0]), int(bgr.shape[1])
            with decoded.memoryview() as pixels:
                self.store.put(photo.id, PIXELS, pixels[: bgr.nbytes], photo.key)
            self.manager.photo_received(photo)
        finally:
            REGISTRY.release_owner(scratch)

    # -- effect jobs (the worker) ---------------------------------------------------------------

    def _load_photo(self, job: Job, index: int, photo_id: str) -> Photo:
        stored = self.manager.photo(photo_id)
        if stored is None:
            raise photo_gone(index)
        try:
            faces = copy_faces(stored.faces, job.id)
            buffer = self.store.get(photo_id, PIXELS, stored.key, owner=job.id)
        except (KeyError, ValueError, AttributeError):  # deleted meanwhile (key gone too)
            raise photo_gone(index) from None
        if self.manager.photo(photo_id) is not stored:  # deleted while being copied
            raise photo_gone(index)
        bgr = buffer.view(np.uint8, (stored.height, stored.width, 3))
        return Photo(bgr, faces, segment=segmenter(self.pipeline, job.id))

    def start(self, job: Job, effect: Any, params: dict[str, Any]) -> None:
        """Queue a created job, its declared outputs listed first (pending, so its status names
        them from the start); the one worker runs it."""
        job.outputs = {output.name: output for output in declared_outputs(effect, params)}
        self.manager.enqueue(job, self.work)

    def work(self, job: Job) -> None:
        effect = get_effect(job.kind)
        job.set_progress("photos", 0.01)
        photos = [self._load_photo(job, i, pid) for i, pid in enumerate(job.photo_ids)]
        for photo in photos:
            extra_gates(photo.bgr, photo.faces, job.id, effect.gates)

        def into_store(name: str, data: memoryview, media_type: str) -> None:
            self.store.put(job.id, name, data, job.key)
            job.mark_ready(name, media_type, data.nbytes)

        run = EffectJobRun(job.id, photos, dict(job.params), self.pipeline.models,
                           self.pipeline, into_store, on_progress=job.set_progress)
        try:
            effect.run(run)
        except BackendError as exc:
            raise models_unavailable(exc) from None
        run.finish()
        missing = [o.name for o in job.outputs.values() if not o.ready]
        if missing:
            raise RuntimeError(f"effect {effect.key} did not emit {', '.join(missing)}")
