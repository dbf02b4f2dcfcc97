"""The camera through the real service (gunicorn) under strace: a capture becomes a photo of
the session exactly like an upload, the kiosk reads the camera's state and frames, a killed
pipeline shows as "reconnecting" and comes back, and nothing is written outside the RAM store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from skimage import data as skdata

from tests.helpers import service as svc
from tests.helpers.strace_log import STRACE_ARGS, outside, parse

pytestmark = [pytest.mark.slow, pytest.mark.needs_models,
              pytest.mark.skipif(shutil.which("gst-launch-1.0") is None
                                 or shutil.which("strace") is None,
                                 reason="needs GStreamer and strace (make system-deps)")]

ASTRONAUT = Path(skdata.__file__).parent / "astronaut.png"
CONSENT = {"X-Ephemera-Consent": "adults-consenting"}


def test_capture_through_the_service_writes_nothing_outside_the_store(tmp_path: Path) -> None:
    log = tmp_path / "strace.log"
    pipeline = (f"filesrc location={ASTRONAUT} ! pngdec ! imagefreeze is-live=true "
                "! video/x-raw,framerate=10/1")
    env = {"EPHEMERA_CAMERA_SOURCE": "gstreamer", "EPHEMERA_CAMERA_PIPELINE": pipeline,
           "EPHEMERA_CAMERA_STILL_SIZE": "512,512", "EPHEMERA_CAMERA_PREVIEW_SIZE": "256,256"}
    service = svc.start(tmp_path, wrapper=("strace", *STRACE_ARGS, "-o", str(log)),
                        env=env, ready_timeout=180)
    try:
        deadline = time.monotonic() + 60
        state = service.get("/api/camera/state").json()
        while not state["ready"] and time.monotonic() < deadline:
            time.sleep(0.2)
            state = service.get("/api/camera/state").json()
        assert state["state"] == "live", state
        frame = service.get("/api/camera/frame.jpg")
        assert frame.status == 200 and frame.body[:2] == b"\xff\xd8"

        refused = service.request("POST", "/api/camera/capture")
        assert refused.status == 400 and refused.json()["error"] == "consent_required"

        shot = service.request("POST", "/api/camera/capture", headers=CONSENT)
        assert shot.status == 201, shot.body
        body = shot.json()
        assert (body["width"], body["height"]) == (512, 512) and len(body["faces"]) == 1
        token = body["session_token"]
        job = service.start_job(token, [body["photo_id"]])
        assert job.status == 202, job.body
        assert service.wait_for_job(job.json()["job_id"], token)["state"] == "done"

        # Fault injection: kill the pipeline (gst-launch, a child of the worker).
        os.kill(_pipeline_pid(), signal.SIGKILL)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = service.get("/api/camera/state").json()
            seen.append(state["state"])
            if state["state"] == "live" and "reconnecting" in seen:
                break
            time.sleep(0.05)
        print("\n[kiosk reads] " + json.dumps({"states": sorted(set(seen)),
                                               "last_error": state["last_error"],
                                               "restarts": state["restarts"]}))
        assert "reconnecting" in seen and state["state"] == "live"
        assert "killed by signal 9" in state["last_error"]
        again = service.request("POST", "/api/camera/capture", headers={
            **CONSENT, "Authorization": f"Bearer {token}"})
        assert again.status == 201, again.body
        assert service.delete("/api/session", token).status == 200
    finally:
        leftovers = svc.stop_and_sweep(service)
    assert leftovers == []
    trace = parse(log)
    store_root = str(service.store.parent) + "/"
    bad = outside(trace, (store_root, "/proc/self/", "/proc/thread-self/", "/dev/shm/wgunicorn-"),
                  ("/dev/null", str(service.store.parent)))
    print("[strace] " + json.dumps({"calls_checked": trace.calls,
                                    "write_like_calls": len(trace.writes),
                                    "outside_allow_list": len(bad)}))
    assert trace.calls > 100
    assert bad == [], "\n".join(w.line for w in bad[:20])


def _pipeline_pid() -> int:
    """The gst-launch-1.0 process started by this test's service (its own process group)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"gst-launch-1.0") and str(ASTRONAUT).encode() in (
                b" ".join(cmdline)):
            return int(entry.name)
    raise AssertionError("no pipeline process found")
