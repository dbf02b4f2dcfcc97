"""The GStreamer camera with real GStreamer: videotestsrc through the same code path as a CSI
or USB camera (only the source fragment of the pipeline differs), fault injection included."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.camera.gstreamer import GStreamerSource, build_pipeline
from appliance.camera.registry import make_source, sources
from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.secure.buffers import REGISTRY

pytestmark = pytest.mark.skipif(shutil.which("gst-launch-1.0") is None,
                                reason="GStreamer is not installed (make system-deps)")

TEST_SOURCE = "videotestsrc is-live=true pattern=smpte ! video/x-raw,framerate=20/1"


def camera_config(tmp_path: Path, pipeline: str = TEST_SOURCE, still_fps: int = 10,
                  **extra: str):
    env = {"EPHEMERA_CAMERA_SOURCE": "gstreamer", "EPHEMERA_CAMERA_PIPELINE": pipeline,
           "EPHEMERA_CAMERA_STILL_SIZE": "320,240", "EPHEMERA_CAMERA_PREVIEW_SIZE": "160,120",
           "EPHEMERA_CAMERA_STILL_FPS": str(still_fps), "EPHEMERA_CAMERA_RETRY_MAX_S": "2",
           "EPHEMERA_STORE_PATH": f"/dev/shm/ephemera-cam-{os.getpid()}/store", **extra}
    return load_config(env=env)


@pytest.fixture(autouse=True)
def _remove_runtime_folder():
    """The pipeline's GStreamer registry cache lives beside the (unused) store: remove it."""
    yield
    shutil.rmtree(f"/dev/shm/ephemera-cam-{os.getpid()}", ignore_errors=True)


@pytest.fixture
def camera(tmp_path: Path):
    source = make_source(camera_config(tmp_path))
    source.start()
    assert source.wait_live(30), source.state()
    yield source
    source.close()


def test_sources_are_found_not_listed() -> None:
    assert {"browser", "gstreamer", "gphoto2"} <= set(sources())


def test_pipeline_keeps_the_configured_source_and_adds_both_pipes(tmp_path: Path) -> None:
    text = build_pipeline(camera_config(tmp_path, "nvarguscamerasrc ! nvvidconv"), 7, 9)
    assert text.startswith("nvarguscamerasrc ! nvvidconv ! videoconvert")
    assert "fdsink fd=7" in text and "fdsink fd=9" in text
    assert "width=320,height=240" in text and "width=160,height=120" in text


def test_preview_and_full_resolution_capture(camera: GStreamerSource) -> None:
    state = camera.state()
    assert state["state"] == "live" and state["ready"] and state["last_error"] is None
    preview = camera.preview_jpeg("test-preview")
    try:
        jpeg = np.frombuffer(preview.view(), np.uint8).copy()
    finally:
        preview.release()
    image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)
    still = camera.capture("test-capture")
    try:
        pixels = still.pixels()
        assert pixels.shape == (240, 320, 3)
        # SMPTE bars: the first bar is light grey, the second yellow (B low, G and R high).
        first, second = pixels[40, 10], pixels[40, 60]
        assert first.min() > 150 and second[0] < 60 and second[1] > 150 and second[2] > 150
        assert REGISTRY.live("test-capture"), "the capture is not in a secure buffer"
    finally:
        still.buffer.release()
    frames = camera.frames
    time.sleep(1.0)
    assert camera.frames - frames >= 5, "the preview is not flowing"


def test_killed_mid_preview_reconnects_and_reports_it(camera: GStreamerSource) -> None:
    first_pid = camera.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not camera.state()["last_error"] and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = camera.state()
    print("\n[kiosk reads]", {k: seen[k] for k in ("state", "ready", "last_error", "restarts")})
    assert seen["state"] == "reconnecting" and seen["ready"] is False
    assert "killed by signal 9" in seen["last_error"]
    with pytest.raises(UserFacingError) as refused:
        camera.preview_jpeg("test-preview")
    assert refused.value.code == "camera_unavailable" and refused.value.status == 503
    assert camera.wait_live(30), camera.state()
    back = camera.state()
    assert back["restarts"] == 1 and camera.pid not in (None, first_pid)
    still = camera.capture("test-capture")
    still.buffer.release()


def test_killed_mid_capture_gives_a_retry_then_recovers(tmp_path: Path) -> None:
    # One still a second: the capture waits for two fresh frames, so it is surely in flight.
    source = make_source(camera_config(tmp_path, still_fps=1))
    source.start()
    try:
        assert source.wait_live(30)
        outcome: dict[str, object] = {}

        def press_button() -> None:
            started = time.monotonic()
            try:
                outcome["capture"] = source.capture("test-capture")
            except UserFacingError as exc:
                outcome["error"] = exc
            outcome["took"] = time.monotonic() - started

        guest = threading.Thread(target=press_button)
        guest.start()
        time.sleep(0.3)
        os.kill(source.pid, signal.SIGKILL)
        guest.join(10)
        assert not guest.is_alive()
        error = outcome.get("error")
        assert isinstance(error, UserFacingError), outcome
        assert error.code == "camera_unavailable" and error.retry_after_s
        assert outcome["took"] < 3.0, "the guest waited for the whole timeout"
        assert REGISTRY.live("test-capture") == []
        assert source.wait_live(30), source.state()
        retry = source.capture("test-capture")
        assert retry.pixels().shape == (240, 320, 3)
        retry.buffer.release()
    finally:
        source.close()


def test_a_camera_that_never_works_is_retried_with_back_off(tmp_path: Path) -> None:
    source = make_source(camera_config(tmp_path, pipeline="v4l2src device=/dev/ephemera-none"))
    source.start()
    try:
        deadline = time.monotonic() + 20
        while source.state()["restarts"] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        state = source.state()
        assert state["restarts"] >= 3 and state["state"] == "reconnecting"
        assert state["retry_in_s"] >= 1.0, "no back-off"
        assert "/dev/ephemera-none" in state["last_error"]
        with pytest.raises(UserFacingError):
            source.capture("test-capture")
    finally:
        source.close()
    assert source.state()["state"] == "stopped"
