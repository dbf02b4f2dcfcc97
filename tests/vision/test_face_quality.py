"""Every quality gate: a real photo that passes, a constructed one that trips it, and the
sentence the guest reads."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from appliance.errors import UserFacingError
from appliance.vision import quality
from appliance.vision.face import Face
from appliance.vision.pipeline import FacePipeline
from tests.vision.faces_support import photo, place

pytestmark = pytest.mark.needs_models

RIGHT_EYE_RING = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE_RING = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]


def refused(pipeline: FacePipeline, image: npt.NDArray[np.uint8], owner: str,
            **kwargs: object) -> UserFacingError:
    with pytest.raises(UserFacingError) as caught:
        pipeline.analyse(image, owner, **{"faces_needed": 1, **kwargs})  # type: ignore[arg-type]
    error = caught.value
    assert error.status == 422
    message, remedy = quality.MESSAGES[error.code]
    assert error.message == message and error.remedy == remedy
    return error


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_normal_photos_pass_every_gate(pipeline: FacePipeline, owner: str, name: str) -> None:
    faces = pipeline.analyse(photo(name), owner, faces_needed=1, need_eyes_open=True)
    assert len(faces) == 1 and faces[0].mesh is not None


def test_no_face(pipeline: FacePipeline, owner: str) -> None:
    error = refused(pipeline, photo("coffee"), owner)
    assert error.code == "no_face"
    assert error.message == "We couldn't find a face."
    assert "Face the camera" in error.remedy


def test_too_many_faces(pipeline: FacePipeline, owner: str) -> None:
    canvas = np.concatenate([photo("astronaut"), photo("astronaut")[:, ::-1]], axis=1)
    error = refused(pipeline, np.ascontiguousarray(canvas), owner)
    assert error.code == "too_many_faces"
    assert "only the people taking part" in error.remedy
    assert len(pipeline.analyse(np.ascontiguousarray(canvas), owner, faces_needed=2)) == 2


def test_a_small_face_in_the_background_is_not_counted(pipeline: FacePipeline,
                                                        owner: str) -> None:
    image = cv2.resize(photo("astronaut"), None, fx=2.0, fy=2.0)  # guest's face 210 px wide
    place(image, photo("astronaut"), 760, 0, 0.5)  # a poster behind: a face 53 px wide
    assert len(pipeline.detect(image, owner)) == 2
    assert len(pipeline.analyse(image, owner, faces_needed=1)) == 1


def test_too_few_faces(pipeline: FacePipeline, owner: str) -> None:
    error = refused(pipeline, photo("astronaut"), owner, faces_needed=2)
    assert error.code == "too_few_faces"
    assert "everyone taking part" in error.remedy


def test_face_too_small(pipeline: FacePipeline, owner: str) -> None:
    small = cv2.resize(photo("astronaut"), None, fx=0.25, fy=0.25,
                       interpolation=cv2.INTER_AREA)
    error = refused(pipeline, small, owner)
    assert error.code == "face_too_small"
    assert "Come closer" in error.remedy


@pytest.mark.parametrize("crop", [(slice(None), slice(205, None)),  # a cheek and an eye
                                  (slice(0, 150), slice(None))])  # the chin
def test_face_cut_off(pipeline: FacePipeline, owner: str, crop: tuple[slice, slice]) -> None:
    cut = np.ascontiguousarray(photo("astronaut")[crop])
    error = refused(pipeline, cut, owner)
    assert error.code == "face_cut_off"
    assert error.message == "Part of your face is outside the picture."


def test_blurry(pipeline: FacePipeline, owner: str) -> None:
    blurred = cv2.GaussianBlur(photo("astronaut"), (0, 0), 2.5)
    error = refused(pipeline, blurred, owner)
    assert error.code == "blurry"
    assert "Hold still" in error.remedy


def _turn(face: Face, degrees: float) -> Face:
    """The same face with its mesh turned about the vertical axis through its centre."""
    assert face.mesh is not None
    centre = face.mesh.mean(axis=0)
    a = math.radians(degrees)
    rotation = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0],
                         [-math.sin(a), 0, math.cos(a)]], np.float32)
    mesh = ((face.mesh - centre) @ rotation.T + centre).astype(np.float32)
    return Face(face.box, face.score, face.keypoints, mesh, face.presence)


def test_extreme_pose(pipeline: FacePipeline, owner: str) -> None:
    # A photo cannot be turned in depth, so the real astronaut mesh is: the gate must pass it
    # at rest and at camera.png's three-quarter view, and refuse a near-profile.
    image = photo("astronaut")
    face = pipeline.analyse(image, owner, faces_needed=1)[0]
    yaw, _pitch = quality.head_pose(face.mesh)  # type: ignore[arg-type]
    assert abs(yaw) < 10
    quality.check_face(image, _turn(face, 45), owner, need_eyes_open=False)
    with pytest.raises(UserFacingError) as caught:
        quality.check_face(image, _turn(face, 75), owner, need_eyes_open=False)
    assert caught.value.code == "extreme_pose" and caught.value.status == 422
    assert caught.value.message == "Your head is turned too far away from the camera."
    assert caught.value.remedy == "Look straight at the camera."


def _close_eyes(image: npt.NDArray[np.uint8], mesh: npt.NDArray[np.float32]) -> npt.NDArray[
        np.uint8]:
    """Paint each eye over with the skin just below it and draw a closed lid's lash line."""
    out = image.astype(np.float32)
    for ring in (RIGHT_EYE_RING, LEFT_EYE_RING):
        pts = mesh[ring, :2]
        centre = pts.mean(axis=0)
        width = float(np.linalg.norm(pts[0] - pts[8]))
        y, x = int(centre[1] + 0.6 * width), int(centre[0])
        skin = np.median(image[y:y + 5, x - 5:x + 5].reshape(-1, 3), axis=0)
        mask = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(mask, [((pts - centre) * 1.5 + centre).astype(np.int32)], 255)
        alpha = cv2.GaussianBlur(mask, (0, 0), 1.5).astype(np.float32)[..., None] / 255
        out = out * (1 - alpha) + skin * alpha
        lash = mesh[ring[:9], :2].astype(np.int32)
        cv2.polylines(out, [lash], False, (30, 35, 50), 2, cv2.LINE_AA)
    return out.astype(np.uint8)


def test_eyes_closed(pipeline: FacePipeline, owner: str) -> None:
    image = photo("astronaut")
    face = pipeline.analyse(image, owner, faces_needed=1, need_eyes_open=True)[0]
    assert face.mesh is not None
    shut = _close_eyes(image, face.mesh)
    error = refused(pipeline, shut, owner, need_eyes_open=True)
    assert error.code == "eyes_closed"
    assert error.remedy == "Keep your eyes open and look at the camera."
    # Effects that do not need open eyes accept the same photo.
    assert len(pipeline.analyse(shut, owner, faces_needed=1)) == 1


def test_every_gate_has_a_guest_message() -> None:
    assert set(quality.MESSAGES) == {"no_face", "too_many_faces", "too_few_faces",
                                     "face_too_small", "face_cut_off", "blurry",
                                     "extreme_pose", "eyes_closed"}
    for message, remedy in quality.MESSAGES.values():
        assert message.endswith(".") and remedy.endswith(".")
