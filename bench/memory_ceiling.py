"""The worker's peak memory while a mix of decompression bombs and 12-megapixel uploads
arrives at once, against the documented ceiling (docs/SERVING.md).

The mix (all sent at the same moment, each on its own connection; each photo that is stored
gets its face-check job started at once): 4 JPEGs of about 70 KB whose
frame header claims 9000 x 4400, 4 all-zero PNGs of about 117 KB that really are 9999 x 4000,
4 honest noisy 9000 x 4400 JPEGs (they pass every header check and must be decoded), and 8
ordinary 12-megapixel photos. Peak = VmHWM of the worker, reset just before the mix.

Run: PYTHONPATH=. python bench/memory_ceiling.py
Needs the reference models (`ephemera build`). Prints a Markdown table for BENCHMARKS.md.
Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from appliance.media.budget import DEFAULT_CAPACITY
from appliance.web.guarded_worker import LIMITS
from bench.slow_clients import twelve_megapixel_jpeg
from tests import media_fixtures as fx
from tests.helpers import service as svc
from tests.test_media_budget import flat_png


def worker_pid(arbiter: int) -> int:
    for _ in range(100):
        children = [int(p) for task in Path(f"/proc/{arbiter}/task").iterdir()
                    for p in (task / "children").read_text().split()]
        if children:
            return children[0]
        time.sleep(0.1)
    raise RuntimeError("no worker")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def post(port: int, data: bytes, content_type: str) -> tuple[int, str]:
    """Upload a photo; when it is stored, start the face-check job on it at once."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/api/photos", body=data,
                     headers={"Content-Type": content_type, **svc.CONSENT})
        reply = conn.getresponse()
        body = json.loads(reply.read() or b"{}")
        if "photo_id" not in body:
            return reply.status, str(body.get("error", ""))
        conn.request("POST", "/api/jobs", body=json.dumps(
            {"effect": "faces", "photos": [body["photo_id"]]}).encode(), headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {body['session_token']}"})
        job = conn.getresponse()
        started = json.loads(job.read() or b"{}")
        return reply.status, "stored, job " + str(started.get("state", started.get("error")))
    finally:
        conn.close()


def main() -> None:
    photo = twelve_megapixel_jpeg()
    jpeg_bomb = fx.jpeg_with_sof(fx.jpeg(), size=(9000, 4400))
    png_bomb = flat_png(9999, 4000)
    noisy = np.random.default_rng(1).integers(0, 256, (4400, 9000, 3), dtype=np.uint8)
    big = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 40])[1].tobytes()
    mix = ([("jpeg bomb", jpeg_bomb, "image/jpeg")] * 4 + [("png bomb", png_bomb, "image/png")]
           * 4 + [("honest 40 MP", big, "image/jpeg")] * 4
           + [("12 MP photo", photo, "image/jpeg")] * 8)
    with tempfile.TemporaryDirectory() as tmp, svc.running(Path(tmp)) as service:
        pid = worker_pid(service.pid)
        # Warm up: the models loaded and one job run, as on a booth that has served a guest.
        status, _ = post(service.port, photo, "image/jpeg")
        time.sleep(8)
        baseline = status_kib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        answers: list[tuple[str, int, str]] = []
        lock = threading.Lock()

        def send(name: str, data: bytes, kind: str) -> None:
            got = post(service.port, data, kind)
            with lock:
                answers.append((name, *got))

        threads = [threading.Thread(target=send, args=item) for item in mix]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(20)  # the accepted jobs run (one at a time) while the peak is recorded
        peak = status_kib(pid, "VmHWM")
    ceiling = baseline * 1024 + LIMITS.body_budget_bytes + DEFAULT_CAPACITY + 80 * (1 << 20)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; 12 MP photo {len(photo) / 1e6:.1f} MB, JPEG bomb "
          f"{len(jpeg_bomb) / 1e3:.0f} KB, PNG bomb {len(png_bomb) / 1e3:.0f} KB, honest "
          f"40 MP JPEG {len(big) / 1e6:.1f} MB\n")
    counts = collections.Counter((name, status, code) for name, status, code in answers)
    print("| upload | answer | count |\n| --- | --- | ---: |")
    for (name, status, code), count in sorted(counts.items()):
        print(f"| {name} | {status} {code} | {count} |")
    print("\n| worker RSS | MiB |\n| --- | ---: |")
    print(f"| after warm-up (baseline) | {baseline / 1024:.0f} |")
    print(f"| peak during the mix (VmHWM) | {peak / 1024:.0f} |")
    print(f"| documented ceiling: baseline + body budget {LIMITS.body_budget_bytes >> 20} + "
          f"decode budget {DEFAULT_CAPACITY >> 20} + running job's scratch 80 | "
          f"{ceiling / (1 << 20):.0f} |")


if __name__ == "__main__":
    main()
