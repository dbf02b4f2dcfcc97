"""The face job: what every job does until the effects land.

decode (in the request thread, so a bad file is refused at once) -> detect + mesh with the
quality gates (in the worker) -> an annotated copy -> JPEG -> encrypted into the RAM store.
Every intermediate is a secure buffer owned by the job id, so the job's release wipes them all.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.errors import UserFacingError
from appliance.jobs.job import Job, ResultInfo
from appliance.media.decode import ImageLimits, decode_image
from appliance.media.encode import encode_image
from appliance.models.backend import BackendError
from appliance.secure.buffers import SecureBuffer
from appliance.vision.pipeline import FacePipeline, draw_faces

RESULT_NAME = "result.jpg"
log = logging.getLogger("ephemera.jobs")


def models_unavailable(exc: Exception) -> UserFacingError:
    log.error("the models cannot run: %s", exc)  # paths and hashes only, never image data
    return UserFacingError(
        "models_unavailable", "The booth's models are not ready.", status=503,
        remedy="Operator: run `ephemera build` (or `make models`), then restart the service. "
               f"({type(exc).__name__}: {exc})")


class FaceJobRunner:
    """Decodes uploads and runs the face analysis for the job manager's worker."""

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

    def work(self, job: Job) -> None:
        bgr = job.images[0]
        job.set_progress("faces", 0.1)
        try:
            faces = self.pipeline.analyse(bgr, job.id, faces_needed=int(job.params["faces"]),
                                          need_mesh=True)
        except BackendError as exc:
            raise models_unavailable(exc) from None
        job.set_progress("drawing", 0.7)
        annotated = draw_faces(bgr, faces, owner=job.id)  # a copy in a buffer of the job
        job.set_progress("encoding", 0.8)
        encoded, view = encode_image(annotated, fmt="jpeg", owner=job.id)
        job.set_progress("storing", 0.9)
        self.store.put(job.id, RESULT_NAME, view, job.key)
        nbytes = view.nbytes
        del view
        encoded.release()
        job.result = ResultInfo(RESULT_NAME, "image/jpeg", nbytes, {
            "faces": len(faces), "width": int(bgr.shape[1]), "height": int(bgr.shape[0])})
