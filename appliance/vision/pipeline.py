"""The face pipeline every effect starts from: detect, mesh, gate, segment.

``FacePipeline`` is the one entry point the effects and the web layer use (docs/ARCHITECTURE.md).
It runs every model through the Backend interface (``ModelSet.get(name).run``), so the same code
runs on ONNX Runtime and TensorRT, and it allocates every image-sized intermediate from secure
buffers owned by the job, released before each call returns. What it returns that came from the
guest (the segmentation mask, each face's mesh, ``draw_faces``' picture) stays in secure buffers
of the job until the job is released (``REGISTRY.release_owner``).

Face order (deterministic): largest box first; equal sizes left to right, then top to bottom.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY
from appliance.vision import quality
from appliance.vision.detect import FaceDetector
from appliance.vision.face import Face
from appliance.vision.mesh import PRESENCE_THRESHOLD, FaceMesher, rect_from_detection
from appliance.vision.segment import Segmenter
from appliance.vision.tensors import ModelProvider

MODEL_NAMES = ("face_detection_short", "face_detection_full", "face_landmark",
               "selfie_segmentation")
MESH_PASSES = 2  # the detection's crop, then one crop re-derived from the mesh


def _check_image(bgr: npt.NDArray[Any]) -> None:
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8 or min(bgr.shape[:2]) < 1:
        raise ValueError(f"expected an H x W x 3 uint8 BGR image, got {bgr.shape} {bgr.dtype}")


class FacePipeline:
    """Detection (both BlazeFace models), mesh, quality gates and segmentation."""

    def __init__(self, models: ModelProvider) -> None:
        self.models = models
        self.detector = FaceDetector(models)
        self.mesher = FaceMesher(models)
        self.segmenter = Segmenter(models)

    def detect(self, bgr: npt.NDArray[np.uint8], owner: str, *,
               mesh: bool = False) -> list[Face]:
        """Every face, largest first. With ``mesh``, each face gets its 468 points and faces
        the mesh model does not believe in (presence below 0.5) are dropped."""
        _check_image(bgr)
        found = self.detector.detect(bgr, owner)
        faces = [Face((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s),
                      k.copy())
                 for b, s, k in zip(found.boxes, found.scores, found.keypoints, strict=True)]
        if not mesh:
            return faces
        kept = []
        for face in faces:
            result = self.mesher.run_refined(
                bgr, rect_from_detection(np.asarray(face.box, np.float32), face.keypoints),
                owner, passes=MESH_PASSES)
            if result.presence >= PRESENCE_THRESHOLD:
                face.mesh, face.presence = result.points, result.presence
                kept.append(face)
            else:
                result.buffer.release()
        return kept

    def analyse(self, bgr: npt.NDArray[np.uint8], owner: str, *, faces_needed: int,
                need_mesh: bool = True, need_eyes_open: bool = False) -> list[Face]:
        """Faces an effect can use, or a ``UserFacingError`` (422) saying what to change.

        Gates, in order: no_face; too_many_faces / too_few_faces (faces much smaller than the
        largest are background and not counted); then per face face_cut_off, face_too_small,
        blurry, extreme_pose and, with ``need_eyes_open``, eyes_closed.
        """
        if faces_needed < 1:
            raise ValueError("faces_needed must be at least 1")
        faces = self.detect(bgr, owner, mesh=need_mesh or need_eyes_open)
        faces = quality.foreground_faces(faces)
        quality.check_count(faces, faces_needed)
        for face in faces:
            quality.check_face(bgr, face, owner, need_eyes_open=need_eyes_open)
        return faces

    def segment(self, bgr: npt.NDArray[np.uint8], owner: str) -> npt.NDArray[np.float32]:
        """Person mask, float32 H x W in [0, 1], in a secure buffer owned by ``owner``."""
        _check_image(bgr)
        _buffer, mask = self.segmenter.segment(bgr, owner)
        return mask

    def zeroise(self) -> None:
        """Wipe every model's input, output and scratch buffers (after each job)."""
        self.models.zeroise_all()


KEYPOINT_COLOURS = ((0, 0, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255), (0, 128, 255),
                    (255, 128, 0))


def draw_faces(bgr: npt.NDArray[np.uint8], faces: list[Face],
               owner: str = "") -> npt.NDArray[np.uint8]:
    """A copy of the image (in a secure buffer of ``owner``) with boxes, keypoints and mesh."""
    _check_image(bgr)
    _buffer, out = REGISTRY.array(bgr.shape, np.uint8, owner=owner, label="annotated")
    np.copyto(out, bgr)
    thickness = max(1, round(max(bgr.shape[:2]) / 500))
    for index, face in enumerate(faces):
        x0, y0, x1, y1 = (round(v) for v in face.box)
        if face.mesh is not None:
            for x, y, _z in face.mesh:
                cv2.circle(out, (round(float(x)), round(float(y))), max(1, thickness // 2),
                           (80, 220, 80), -1, cv2.LINE_AA)
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 200, 0), thickness, cv2.LINE_AA)
        for (x, y), colour in zip(face.keypoints, KEYPOINT_COLOURS, strict=True):
            cv2.circle(out, (round(float(x)), round(float(y))), 2 * thickness, colour, -1,
                       cv2.LINE_AA)
        label = f"{index + 1}: {face.score:.2f}"
        cv2.putText(out, label, (x0, max(12, y0 - 4 * thickness)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, (0, 200, 0), thickness, cv2.LINE_AA)
    return out
