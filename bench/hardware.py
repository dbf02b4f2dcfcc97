"""Camera figures from GStreamer's test source: preview frame rate and capture-to-upload latency.

    .venv/bin/python bench/hardware.py [--seconds 4]

For 1080p and 12 MP (4000x3000) stills: the preview frames per second the service receives
(target 15), and the time from "capture" to a JPEG upload buffer ready for the photo path
(waiting for a fresh still, copying it, encoding it). The reference measured in the same run is
the JPEG encode of the same frame alone, so the ratio says what the camera path adds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time

from appliance.camera.gstreamer import GStreamerSource
from appliance.config import load_config
from appliance.media.encode import encode_image

SIZES = {"1080p": (1920, 1080, 10), "12MP": (4000, 3000, 5)}


def measure(label: str, width: int, height: int, still_fps: int, seconds: float) -> dict:
    store = f"/dev/shm/ephemera-bench-{os.getpid()}/store"
    cfg = load_config(env={
        "EPHEMERA_CAMERA_SOURCE": "gstreamer",
        "EPHEMERA_CAMERA_PIPELINE": "videotestsrc is-live=true pattern=ball "
                                    f"! video/x-raw,framerate={still_fps}/1",
        "EPHEMERA_CAMERA_STILL_SIZE": f"{width},{height}",
        "EPHEMERA_CAMERA_STILL_FPS": str(still_fps), "EPHEMERA_CAMERA_PREVIEW_FPS": "15",
        "EPHEMERA_CAMERA_PREVIEW_SIZE": "640,360", "EPHEMERA_STORE_PATH": store})
    source = GStreamerSource(cfg)
    source.start()
    try:
        if not source.wait_live(60):
            raise RuntimeError(source.state())
        time.sleep(1.0)
        frames = source.frames
        time.sleep(seconds)
        fps = (source.frames - frames) / seconds
        capture_s, encode_s = [], []
        for _ in range(3):
            started = time.perf_counter()
            still = source.capture("bench")
            upload, view = encode_image(still.pixels(), "jpeg", "bench", 95)
            view.release()
            capture_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            again, view = encode_image(still.pixels(), "jpeg", "bench", 95)
            view.release()
            encode_s.append(time.perf_counter() - started)
            for buffer in (still.buffer, upload, again):
                buffer.release()
        capture, encode = statistics.median(capture_s), statistics.median(encode_s)
        return {"still": label, "size": f"{width}x{height}", "still_fps": still_fps,
                "preview_fps": round(fps, 1), "capture_to_upload_ms": round(capture * 1000),
                "jpeg_encode_ms": round(encode * 1000),
                "ratio_to_encode": round(capture / encode, 2)}
    finally:
        source.close()
        shutil.rmtree(os.path.dirname(store), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    for label, (width, height, fps) in SIZES.items():
        print(json.dumps(measure(label, width, height, fps, args.seconds)))


if __name__ == "__main__":
    main()
