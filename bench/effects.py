"""End-to-end time of the effects from 12-megapixel JPEGs, against the floor of the same run.

Baby predictor: two 12-MP JPEGs (the astronaut scaled up, and her mirror image as the second
parent, each with sensor noise) through ``ephemera run``'s own path (decode into secure buffers,
detection, mesh and gates, the effect, JPEG encoding, the file written to tmpfs). The floor,
measured in the same run and interleaved round by round, is what no implementation can skip:
decoding both JPEGs and encoding one 1024 x 1024 JPEG. Reported: medians and total / floor.

    python bench/effects.py [--runs 5]

Needs the built models (`ephemera build`). Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.config import load_config
from appliance.effects.registry import get_effect
from appliance.jobs.local_run import read_photo, run_effect
from appliance.media.decode import ImageLimits
from appliance.media.encode import encode_image
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline

WIDTH, HEIGHT = 4000, 3000


def make_jpegs(folder: Path) -> list[Path]:
    """Two 12-MP photos: the astronaut scaled up (face about 620 px) and her mirror image."""
    import skimage.data

    canvas = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    person = cv2.resize(skimage.data.astronaut()[:, :, ::-1], (HEIGHT, HEIGHT),
                        interpolation=cv2.INTER_CUBIC)
    canvas[:, 500:500 + HEIGHT] = person
    paths = []
    for index, image in enumerate((canvas, np.ascontiguousarray(canvas[:, ::-1]))):
        noise = np.random.default_rng(index).normal(0, 4, image.shape)
        noisy = np.clip(image + noise, 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        paths.append(folder / f"parent{index}.jpg")
        paths[-1].write_bytes(data.tobytes())
    return paths


def floor(paths: list[Path]) -> None:
    """Decode both photos and encode one 1024 x 1024 JPEG: the unavoidable work."""
    owner = "bench-floor"
    try:
        for path in paths:
            read_photo(path, owner, ImageLimits())
        buffer, image = REGISTRY.array((1024, 1024, 3), np.uint8, owner=owner)
        image[...] = np.arange(1024, dtype=np.uint8)[:, None, None]
        encoded, view = encode_image(image, fmt="jpeg", owner=owner)
        del view
        encoded.release()
        buffer.release()
    finally:
        REGISTRY.release_owner(owner)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="bench-effects-"))
    try:
        paths = make_jpegs(folder)
        models = ModelSet(load_config())
        pipeline = FacePipeline(models)
        effect = get_effect("baby")
        totals, floors, stages = [], [], []
        for run in range(args.runs + 1):  # the first round warms up (models opened)
            since = time.perf_counter()
            floor(paths)
            f = time.perf_counter() - since
            out = folder / f"out{run}"
            since = time.perf_counter()
            summary = run_effect(effect, paths, {}, out, pipeline)
            t = time.perf_counter() - since
            shutil.rmtree(out)
            if run:
                floors.append(f)
                totals.append(t)
                stages.append(summary["stages_s"])
        models.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    total, low = statistics.median(totals), statistics.median(floors)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.python_version()}, runs {args.runs} (median), load average "
          f"{os.getloadavg()[0]:.2f}")
    print("| effect (two 12 MP JPEGs) | total ms | floor ms | total / floor |")
    print("| --- | --- | --- | --- |")
    print(f"| baby | {total * 1000:.0f} | {low * 1000:.0f} | {total / low:.2f} |")
    names = sorted({name for s in stages for name in s})
    print("\nstages (median ms): " + ", ".join(
        f"{name} {statistics.median(s.get(name, 0.0) for s in stages) * 1000:.0f}"
        for name in names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
