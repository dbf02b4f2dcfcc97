"""What releasing a job costs: wiping everything a 12-megapixel job held, against a plain memory
copy of the same bytes and against the job's own run, measured in the same process.

Run: PYTHONPATH=. python bench/jobs.py [--repeat 5]
Needs the reference models (`ephemera build`). Prints a Markdown table for BENCHMARKS.md.
Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

from appliance.config import load_config
from appliance.effects.registry import get_effect
from appliance.jobs.effect_jobs import EffectJobRunner, declared_outputs
from appliance.jobs.job import JobState
from appliance.jobs.manager import JobManager
from appliance.jobs.photos import FaceRule
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.secure.store import RamStore
from appliance.vision.pipeline import FacePipeline


def twelve_megapixel_jpeg() -> np.ndarray:
    face = cv2.resize(np.ascontiguousarray(skdata.astronaut()[:, :, ::-1]), (3000, 3000))
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    canvas[:, 500:3500] = face
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return encoded


def copy_ms(nbytes: int) -> float:
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    start = time.perf_counter()
    np.copyto(dst, src)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path("/dev/shm") / f"ephemera-bench-{uuid.uuid4().hex[:8]}"
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(root / "store")})
    store = RamStore.from_config(cfg)
    models = ModelSet(cfg)
    manager = JobManager(cfg, store, models, sweep_interval_s=None)
    runner = EffectJobRunner(FacePipeline(models), store, manager)
    effect = get_effect("faces")
    jpeg = twelve_megapixel_jpeg()
    rows: list[tuple[float, float, float, float, int]] = []
    try:
        for _ in range(args.repeat + 1):  # the first round opens the models: not counted
            photo, token = manager.create_photo(None)
            upload = REGISTRY.allocate(jpeg.size, owner=photo.scratch_owner, label="upload")
            upload.view()[:] = jpeg
            start = time.perf_counter()
            runner.receive_photo(photo, upload, FaceRule.for_upload(faces=1))
            decode = time.perf_counter() - start
            params = effect.validate_params({"faces": 1})
            job, _token = manager.create_job(token, "faces", params=params,
                                             photo_ids=[photo.id])
            job.outputs = {o.name: o for o in declared_outputs(effect, params)}
            done = threading.Event()

            def work(job: object, done: threading.Event = done) -> None:
                try:
                    runner.work(job)  # type: ignore[arg-type]
                finally:
                    done.set()

            start = time.perf_counter()
            manager.enqueue(job, work)
            done.wait(300)
            while job.state is JobState.RUNNING:
                time.sleep(0.001)
            run = time.perf_counter() - start
            assert job.state is JobState.DONE, job.status()
            held = sum(b.capacity for b in REGISTRY.live(job.id))
            start = time.perf_counter()
            manager.release_job(job.id)
            release = time.perf_counter() - start
            manager.release_photo(photo.id)
            rows.append((decode * 1000, run * 1000, release * 1000, copy_ms(held), held))
    finally:
        manager.close()
        models.close()
        shutil.rmtree(root, ignore_errors=True)
    rows = rows[1:]
    decode, run, release, copy, held = (statistics.median(r[i] for r in rows) for i in range(5))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.repeat} rounds, medians")
    print("| step (12 MP JPEG, one face) | ms | ratio |")
    print("| --- | ---: | ---: |")
    print(f"| photo: decode, detect, mesh, gates, encrypt, store | {decode:.1f} | |")
    print(f"| job: decrypt the photo, draw, JPEG, encrypt, store | {run:.1f} | |")
    print(f"| release ({held / (1 << 20):.0f} MiB of buffers, models, blob, key) | "
          f"{release:.1f} | {release / copy:.2f} x a copy of those bytes; "
          f"{release / run:.3f} x the run |")


if __name__ == "__main__":
    main()
