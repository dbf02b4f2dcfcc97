"""Detection and mesh on real faces and the variants a booth meets: rotated, small, padded,
grouped, cropped tight, mirrored; and no face where there is none."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.vision.mesh import eye_centres
from appliance.vision.pipeline import FacePipeline
from tests.vision.faces_support import (
    ASTRONAUT_FACE,
    CAMERA_FACE,
    iou,
    moved,
    photo,
    place,
    rotate_about,
)

pytestmark = pytest.mark.needs_models


@pytest.mark.parametrize(("name", "truth"), [("astronaut", ASTRONAUT_FACE),
                                             ("camera", CAMERA_FACE)])
def test_finds_the_one_real_face(pipeline: FacePipeline, owner: str, name: str,
                                 truth: tuple[float, float, float, float]) -> None:
    faces = pipeline.detect(photo(name), owner)
    assert len(faces) == 1
    assert iou(faces[0].box, truth) > 0.6
    assert faces[0].score > 0.7


# chelsea is a cat's face: not a person's, and it must not be taken for one.
@pytest.mark.parametrize("name", ["coffee", "brick", "text", "chelsea", "rocket", "coins"])
def test_no_face_in_photos_without_faces(pipeline: FacePipeline, owner: str, name: str) -> None:
    assert pipeline.detect(photo(name), owner) == []
    assert pipeline.detect(photo(name), owner, mesh=True) == []


@pytest.mark.parametrize("degrees", [-30, 25])
def test_rotated_photo(pipeline: FacePipeline, owner: str, degrees: float) -> None:
    image, matrix = rotate_about(photo("astronaut"), degrees)
    faces = pipeline.detect(image, owner, mesh=True)
    assert len(faces) == 1
    x0, y0, x1, y1 = ASTRONAUT_FACE
    centre = matrix @ np.array([(x0 + x1) / 2, (y0 + y1) / 2, 1.0])
    box = faces[0].box
    assert np.hypot((box[0] + box[2]) / 2 - centre[0], (box[1] + box[3]) / 2 - centre[1]) < 15
    # The eye keypoints turn with the face: their slope is the rotation.
    (rx, ry), (lx, ly) = faces[0].keypoints[:2]
    assert np.degrees(np.arctan2(ly - ry, lx - rx)) == pytest.approx(-degrees + 4, abs=8)


@pytest.mark.parametrize("scale", [0.5, 0.3])
def test_scaled_down(pipeline: FacePipeline, owner: str, scale: float) -> None:
    small = cv2.resize(photo("astronaut"), None, fx=scale, fy=scale,
                       interpolation=cv2.INTER_AREA)
    faces = pipeline.detect(small, owner)
    assert len(faces) == 1
    assert iou(faces[0].box, moved(ASTRONAUT_FACE, scale, 0, 0)) > 0.6


def test_small_face_padded_into_a_large_canvas(pipeline: FacePipeline, owner: str) -> None:
    canvas = np.full((1200, 1600, 3), 90, np.uint8)
    s, _, dx, dy = place(canvas, photo("astronaut"), 1000, 650, 0.7)  # face about 75 px wide
    faces = pipeline.detect(canvas, owner)
    assert len(faces) == 1
    assert iou(faces[0].box, moved(ASTRONAUT_FACE, s, dx, dy)) > 0.5


def test_two_faces_side_by_side_largest_first(pipeline: FacePipeline, owner: str) -> None:
    canvas = np.full((512, 1024, 3), 128, np.uint8)
    canvas[:, :512] = photo("camera")
    canvas[:, 512:] = photo("astronaut")
    faces = pipeline.detect(canvas, owner)
    assert len(faces) == 2
    assert iou(faces[0].box, moved(ASTRONAUT_FACE, 1.0, 512, 0)) > 0.6  # the larger face
    assert iou(faces[1].box, CAMERA_FACE) > 0.6


def test_group_photo_of_small_faces(pipeline: FacePipeline, owner: str) -> None:
    # Six people whose faces are 60 to 100 pixels wide in a 1280-pixel-wide photo.
    canvas = np.full((853, 1280, 3), 140, np.uint8)
    astronaut = photo("astronaut")[20:340, 90:370]
    expected = []
    for i, scale in enumerate([0.6, 0.7, 0.8, 0.9, 0.65, 0.75]):
        x, y = 30 + i * 205, 120 + (i % 2) * 330
        _, _, dx, dy = place(canvas, astronaut, x, y, scale)
        expected.append(moved(ASTRONAUT_FACE, scale, dx - 90 * scale, dy - 20 * scale))
    widths = [b[2] - b[0] for b in expected]
    assert min(widths) >= 60 and max(widths) <= 100
    faces = pipeline.detect(canvas, owner)
    assert len(faces) == 6
    for truth in expected:
        assert max(iou(f.box, truth) for f in faces) > 0.5
    sizes = [f.box[2] - f.box[0] for f in faces]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(("name", "truth"), [("astronaut", ASTRONAUT_FACE),
                                             ("camera", CAMERA_FACE)])
def test_face_filling_the_whole_frame(pipeline: FacePipeline, owner: str, name: str,
                                      truth: tuple[float, float, float, float]) -> None:
    # Cropped 15 px inside the face on every side: forehead, chin and cheeks are cut. Only
    # the padding around the whole image lets the short-range model see this as a face.
    x0, y0, x1, y1 = (int(v) for v in truth)
    tight = np.ascontiguousarray(photo(name)[y0 + 15:y1 - 15, x0 + 15:x1 - 15])
    faces = pipeline.detect(tight, owner)
    assert len(faces) == 1
    h, w = tight.shape[:2]
    bx0, by0, bx1, by1 = faces[0].box
    inside = (min(bx1, w) - max(bx0, 0)) * (min(by1, h) - max(by0, 0))
    assert inside > 0.8 * w * h  # the box covers the frame
    assert iou(faces[0].box, moved(truth, 1.0, -x0 - 15, -y0 - 15)) > 0.4


def test_mirrored_photo(pipeline: FacePipeline, owner: str) -> None:
    image = np.ascontiguousarray(photo("astronaut")[:, ::-1])
    faces = pipeline.detect(image, owner)
    assert len(faces) == 1
    x0, y0, x1, y1 = ASTRONAUT_FACE
    assert iou(faces[0].box, (512 - x1, y0, 512 - x0, y1)) > 0.6
    # Keypoint 0 is the eye on the image's left, mirrored or not.
    assert faces[0].keypoints[0, 0] < faces[0].keypoints[1, 0]


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_eye_keypoints_agree_with_the_mesh(pipeline: FacePipeline, owner: str,
                                           name: str) -> None:
    face = pipeline.detect(photo(name), owner, mesh=True)[0]
    assert face.mesh is not None and face.mesh.shape == (468, 3)
    assert face.presence is not None and face.presence > 0.5
    eyes = eye_centres(face.mesh)
    distance = float(np.linalg.norm(eyes[0] - eyes[1]))
    error = np.linalg.norm(eyes - face.keypoints[:2], axis=1)
    assert (error < 0.35 * distance).all()
    # The mesh lies inside (a slightly grown) detection box.
    x0, y0, x1, y1 = face.box
    margin = 0.25 * (x1 - x0)
    assert (face.mesh[:, 0] > x0 - margin).all() and (face.mesh[:, 0] < x1 + margin).all()
    assert (face.mesh[:, 1] > y0 - margin).all() and (face.mesh[:, 1] < y1 + margin).all()


def test_mesh_follows_a_small_shift(pipeline: FacePipeline, owner: str) -> None:
    image = photo("astronaut")
    shifted = np.full_like(image, 0)
    shifted[3:, 2:] = image[:-3, :-2]  # content moves 2 px right, 3 px down
    a = pipeline.detect(image, owner, mesh=True)[0].mesh
    b = pipeline.detect(shifted, owner, mesh=True)[0].mesh
    assert a is not None and b is not None
    delta = b[:, :2] - a[:, :2]
    assert np.allclose(delta.mean(axis=0), [2, 3], atol=1.0)
    assert float(np.median(np.linalg.norm(delta - [2, 3], axis=1))) < 1.5


def test_output_is_deterministic(pipeline: FacePipeline, owner: str) -> None:
    canvas = np.full((512, 1024, 3), 128, np.uint8)
    canvas[:, :512] = photo("astronaut")
    canvas[:, 512:] = photo("camera")
    first = [f.to_json() for f in pipeline.detect(canvas, owner)]
    second = [f.to_json() for f in pipeline.detect(canvas, owner)]
    assert first == second and len(first) == 2


def test_wide_panorama(pipeline: FacePipeline, owner: str) -> None:
    # 5000 x 700: letterboxed whole, the portrait is a 20-px blob the full-range model takes
    # for a face; the working copy keeps its pixel budget and the tiles find the real face.
    pano = np.full((700, 5000, 3), 100, np.uint8)
    pano[100:612, 3000:3512] = photo("astronaut")
    faces = pipeline.detect(pano, owner)
    assert len(faces) == 1
    assert iou(faces[0].box, moved(ASTRONAUT_FACE, 1.0, 3000, 100)) > 0.6


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (2, 3000, 3), (3000, 2, 3)])
def test_degenerate_sizes_find_nothing_and_do_not_fail(pipeline: FacePipeline, owner: str,
                                                       shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)
    assert pipeline.detect(image, owner, mesh=True) == []
    assert pipeline.segment(image, owner).shape == shape[:2]
