"""The gphoto2 source against a STAND-IN of the binding (tests/fakes/fake_gphoto2.py): no DSLR
here. What is shown: the capture target is set to the camera's RAM before any shot, the still
is downloaded into a secure buffer and removed from the camera, nothing lands on the card, an
unplugged camera is reconnected, and a camera without a RAM target is refused and reported."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from appliance.camera.gphoto2_source import Gphoto2Source, probe_capture_target
from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.secure.buffers import REGISTRY
from tests.fakes.fake_gphoto2 import StandInCamera, StandInModule


def jpeg(width: int, height: int) -> bytes:
    image = np.full((height, width, 3), 90, np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def make(has_ram_target: bool = True) -> tuple[Gphoto2Source, StandInCamera]:
    body = StandInCamera(jpeg(600, 400), jpeg(160, 120), has_ram_target)
    cfg = load_config(env={"EPHEMERA_CAMERA_SOURCE": "gphoto2",
                           "EPHEMERA_CAMERA_RETRY_MAX_S": "1"})
    return Gphoto2Source(cfg, gp_module=StandInModule(body)), body


def test_capture_goes_to_ram_and_into_a_secure_buffer() -> None:
    source, body = make()
    source.start()
    try:
        assert source.wait_live(10)
        assert body.target == "Internal RAM"
        state = source.state()
        assert state["captures_to_ram"] and state["capture_target"] == "Internal RAM"
        preview = source.preview_jpeg("test-preview")
        assert bytes(preview.view()[:2]) == b"\xff\xd8"
        preview.release()
        still = source.capture("test-capture")
        assert still.media_type == "image/jpeg"
        assert bytes(still.buffer.view()[: still.buffer.nbytes]) == body.jpeg
        assert REGISTRY.live("test-capture")
        still.buffer.release()
        assert body.card == [] and body.ram == [], "the still stayed on the camera"
    finally:
        source.close()


def test_unplugged_camera_is_reconnected() -> None:
    source, body = make()
    source.start()
    try:
        assert source.wait_live(10)
        body.unplugged = True
        deadline = time.monotonic() + 5
        while source.state()["state"] == "live" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert source.state()["state"] == "reconnecting"
        assert source.state()["last_error"]
        with pytest.raises(UserFacingError):
            source.capture("test-capture")
        body.unplugged = False
        assert source.wait_live(10)
        assert body.inits >= 2
    finally:
        source.close()


def test_a_camera_that_cannot_capture_to_ram_is_refused_and_reported() -> None:
    source, body = make(has_ram_target=False)
    source.start()
    try:
        assert source.wait_live(10)
        assert source.state()["captures_to_ram"] is False
        with pytest.raises(UserFacingError) as refused:
            source.capture("test-capture")
        assert "RAM" in refused.value.remedy
        assert body.card == []
    finally:
        source.close()
    ok, detail = probe_capture_target(StandInModule(StandInCamera(b"", b"", False)))
    assert not ok and "RAM" in detail
    ok, detail = probe_capture_target(StandInModule(StandInCamera(b"", b"", True)))
    assert ok and "Internal RAM" in detail
