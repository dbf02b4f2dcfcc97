"""`ephemera detect`: JSON schema, --mesh, --draw, EXIF orientation, unreadable files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.cli import main
from appliance.vision.face import KEYPOINT_NAMES
from tests.vision.faces_support import ASTRONAUT_FACE, iou, photo


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(data.tobytes())


def _jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose EXIF block says how to turn the stored pixels for display."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(
        ">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    raw = data.tobytes()
    return raw[:2] + segment + raw[2:]


@pytest.mark.needs_models
def test_json_lists_boxes_scores_keypoints_and_mesh(
        face_models: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image_path = tmp_path / "guest.png"
    _write_png(image_path, photo("astronaut"))
    drawn = tmp_path / "drawn.png"
    assert main(["detect", str(image_path), "--json", "--mesh", "--draw", str(drawn)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == 1
    assert report["image"] == {"width": 512, "height": 512}
    [face] = report["faces"]
    assert iou(face["box"], ASTRONAUT_FACE) > 0.6
    assert 0.5 < face["score"] <= 1.0 and face["presence"] > 0.5
    assert list(face["keypoints"]) == list(KEYPOINT_NAMES)
    assert len(face["mesh"]) == 468 and all(len(p) == 3 for p in face["mesh"])
    picture = cv2.imread(str(drawn))
    assert picture.shape == (512, 512, 3)
    assert not np.array_equal(picture, photo("astronaut"))


@pytest.mark.needs_models
def test_plain_output_and_no_mesh_by_default(
        face_models: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image_path = tmp_path / "guest.png"
    _write_png(image_path, photo("camera"))
    assert main(["detect", str(image_path)]) == 0
    out = capsys.readouterr().out
    assert "512 x 512, 1 face(s)" in out and "score" in out
    assert main(["detect", str(image_path), "--json"]) == 0
    [face] = json.loads(capsys.readouterr().out)["faces"]
    assert "mesh" not in face and "presence" not in face


@pytest.mark.needs_models
def test_exif_orientation_is_applied_before_detection(
        face_models: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Stored sideways, as a phone held upright writes it, with orientation 6 (turn 90 degrees
    # clockwise to display): the face must be found where it is in the upright photo.
    stored = cv2.rotate(photo("astronaut"), cv2.ROTATE_90_COUNTERCLOCKWISE)
    path = tmp_path / "phone.jpg"
    path.write_bytes(_jpeg_with_orientation(stored, 6))
    assert main(["detect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["image"] == {"width": 512, "height": 512}
    assert len(report["faces"]) == 1
    assert iou(report["faces"][0]["box"], ASTRONAUT_FACE) > 0.6


@pytest.mark.needs_models
def test_a_file_that_is_not_an_image(face_models: object, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    assert main(["detect", str(path)]) == 1
    assert "not_an_image" in capsys.readouterr().err


@pytest.mark.needs_models
def test_a_missing_file(face_models: object, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(tmp_path / "nothing.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_models_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EPHEMERA_MODELS_ENGINES_DIR", str(tmp_path / "engines"))
    image_path = tmp_path / "guest.png"
    _write_png(image_path, photo("astronaut"))
    assert main(["detect", str(image_path)]) == 1
    assert "ephemera build" in capsys.readouterr().err
