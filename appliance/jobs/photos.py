"""A guest's photos: decoded and gated once, kept encrypted, handed to each effect job.

Why photos apart from jobs: a guest takes or uploads a photo once and may try several effects
on it (or combine two photos, for the baby and kiss effects). So a photo is checked by the face
gates when it arrives, which answers "come closer" at once, and is then kept as pixels in the
RAM store under its own key until the guest deletes it, the session ends or retention expires.

A photo's owner id for secure buffers is its own id: what stays in memory between jobs (each
face's mesh) is wiped by ``REGISTRY.release_owner(photo.id)``; its pixels are ciphertext in the
store. A job decrypts a copy into buffers of the job, so a job's release never touches the
photo and a photo's release never touches a running job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from appliance.errors import UserFacingError
from appliance.jobs.job import new_job_id
from appliance.secure.buffers import REGISTRY
from appliance.vision import quality

if TYPE_CHECKING:
    from appliance.vision.face import Face
    from appliance.vision.pipeline import FacePipeline

log = logging.getLogger("ephemera.jobs")
PIXELS = "pixels"  # the blob of a photo in the store: H x W x 3 uint8 BGR
SCRATCH = ":scratch"  # owner suffix for what gating allocates and drops at once
MAX_FACES_PER_PHOTO = 2  # no effect takes more; a crowd is refused at the door


def upload_face_counts(effect: Any) -> frozenset[int]:
    """Faces a photo may hold to be used by ``effect`` with some number of photos and some
    value of its parameters (the self-test's ``faces`` parameter stands for the total)."""
    low, high = effect.photos
    totals = {effect.faces}
    for param in effect.params:
        if param.name == "faces" and param.minimum is not None and param.maximum is not None:
            totals = set(range(int(param.minimum), int(param.maximum) + 1))
    return frozenset(max(1, total // n) for total in totals for n in range(low, high + 1))


@dataclass(frozen=True)
class FaceRule:
    """What a photo must hold to be kept: how many faces, and which extra gates."""

    counts: frozenset[int] = frozenset(range(1, MAX_FACES_PER_PHOTO + 1))
    eyes_open: bool = False

    @classmethod
    def for_upload(cls, effect: Any = None, faces: int | None = None) -> FaceRule:
        """The rule for an upload: any 1-2 faces, or what ``effect`` (or ``faces``) needs."""
        counts = frozenset(range(1, MAX_FACES_PER_PHOTO + 1))
        eyes = False
        if effect is not None:
            counts = upload_face_counts(effect)
            eyes = "eyes_open" in effect.gates
        if faces is not None:
            counts = frozenset({faces})
        return cls(counts, eyes)


def gate_faces(pipeline: FacePipeline, bgr: npt.NDArray[np.uint8], owner: str,
               rule: FaceRule) -> list[Face]:
    """The photo's faces (largest first, with meshes) or the first gate's 422."""
    faces = quality.foreground_faces(pipeline.detect(bgr, owner, mesh=True))
    if not faces:
        raise quality.gate_error("no_face")
    wanted = sorted(rule.counts)
    if len(faces) > wanted[-1]:
        raise quality.gate_error("too_many_faces", f"found {len(faces)}, need {wanted}")
    if len(faces) not in rule.counts:
        raise quality.gate_error("too_few_faces", f"found {len(faces)}, need {wanted}")
    for face in faces:
        quality.check_face(bgr, face, owner, need_eyes_open=rule.eyes_open)
    return faces


def copy_faces(faces: list[Face], owner: str) -> list[Face]:
    """The same faces with each mesh copied into a secure buffer of ``owner``."""
    from dataclasses import replace

    copies = []
    for face in faces:
        mesh = None
        if face.mesh is not None:
            _buffer, mesh = REGISTRY.array(face.mesh.shape, np.float32, owner=owner,
                                           label="mesh")
            np.copyto(mesh, face.mesh)
        copies.append(replace(face, keypoints=face.keypoints.copy(), mesh=mesh))
    return copies


@dataclass
class StoredPhoto:
    """One photo of a session: its pixels are the store's ``PIXELS`` blob under ``key``."""

    id: str
    session_id: str
    created_at: float
    expires_at: float
    key: Any = None  # appliance.secure.crypto.JobKey, owner = the photo's id
    width: int = 0
    height: int = 0
    faces: list[Face] = field(default_factory=list)
    ready: bool = False  # set once the pixels are stored and the faces passed the gates

    @property
    def scratch_owner(self) -> str:
        return self.id + SCRATCH

    def summary(self) -> dict[str, Any]:
        """What the owner may see: size and face boxes, never pixels or meshes."""
        return {"photo_id": self.id, "width": self.width, "height": self.height,
                "faces": [face.to_json() for face in self.faces],
                "expires_at": round(self.expires_at, 3)}


def new_photo_id() -> str:
    return new_job_id()


def photo_gone(index: int) -> UserFacingError:
    return UserFacingError(
        "photo_not_found", f"Photo {index + 1} is not (or no longer) in this session.",
        status=404, remedy="Take or upload the photo again, then start the effect again.")


def release_photo_data(photo: StoredPhoto, store: Any) -> None:
    """Meshes, scratch, the stored pixels and the key of one photo; each step runs regardless."""
    photo.faces = []
    REGISTRY.release_owner(photo.scratch_owner)
    REGISTRY.release_owner(photo.id)
    try:
        store.delete_job(photo.id)
    except Exception as exc:
        log.error("photo %s: store delete failed: %s", photo.id, type(exc).__name__)
    key, photo.key = photo.key, None
    if key is not None:
        key.release()
