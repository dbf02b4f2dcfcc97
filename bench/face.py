"""Per-stage latency of the face pipeline on a 12-megapixel JPEG.

Stages: decode (JPEG -> BGR in a secure buffer), detect (both BlazeFace passes plus tiles),
mesh (one face, two passes), segment (model plus full-resolution guided filter), and the
quality gates. The reference, measured in the same run on the same image and interleaved with the
stages, is a plain ``cv2.resize`` of the decoded 12-MP image to 1280 x 960 (INTER_AREA): figures
are reported as ratios against it so they stay comparable across machines.

    python bench/face.py [--runs 7] [--threads 0]

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
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.config import load_config
from appliance.secure.buffers import REGISTRY, use_memfd_secret
from appliance.vision.cli_detect import load_image
from appliance.vision.mesh import rect_from_detection
from appliance.vision.pipeline import FacePipeline
from bench.portrait import HEIGHT, WIDTH, astronaut_12mp, jpeg_bytes


def make_jpeg(path: Path) -> None:
    """A 12-MP photo: scikit-image's astronaut scaled up (face ~620 px), with sensor noise."""
    path.write_bytes(jpeg_bytes(astronaut_12mp()))


def timed(stages: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall time (ms) of each stage after a warm-up call.

    The stages run round-robin (one of each per round), so a busy machine slows every stage
    of a round alike and the ratios stay meaningful.
    """
    samples: dict[str, list[float]] = {name: [] for name in stages}
    for fn in stages.values():
        fn()
    for _ in range(runs):
        for name, fn in stages.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", type=Path, default=None,
                        help="a 12-megapixel JPEG to time (default: one made for this run)")
    args = parser.parse_args()

    from appliance.models.loader import ModelSet

    made = args.image is None
    if made:
        args.image = Path(tempfile.mkdtemp(prefix="ephemera-bench-", dir="/dev/shm")) / "12mp.jpg"
        make_jpeg(args.image)
    try:
        cfg = load_config()
        use_memfd_secret(cfg.secure.memfd_secret)
        models = ModelSet(cfg)
        pipeline = FacePipeline(models)
        owner = "bench-face"
        bgr = load_image(args.image, owner)
        small = np.empty((960, 1280, 3), np.uint8)
        faces = pipeline.detect(bgr, owner)
        assert len(faces) == 1, f"expected the one face, found {len(faces)}"
        rect = rect_from_detection(np.asarray(faces[0].box, np.float32), faces[0].keypoints)

        def decode() -> None:
            load_image(args.image, "bench-decode")
            REGISTRY.release_owner("bench-decode")

        def segment() -> None:
            pipeline.segment(bgr, "bench-mask")
            REGISTRY.release_owner("bench-mask")

        stages = {
            "reference: cv2.resize 12 MP -> 1280 x 960": lambda: cv2.resize(
                bgr, (1280, 960), dst=small, interpolation=cv2.INTER_AREA),
            "decode (JPEG -> BGR, secure buffer)": decode,
            "detect (short + full range + 6 tiles)": lambda: pipeline.detect(bgr, owner),
            "mesh (one face, 2 passes)": lambda: pipeline.mesher.run_refined(bgr, rect, owner),
            "segment (model + guided filter, full res)": segment,
            "analyse (detect + mesh + all gates)": lambda: pipeline.analyse(
                bgr, owner, faces_needed=1, need_eyes_open=True),
        }
        results = timed(stages, args.runs)
        reference = next(iter(results.values()))
        print(f"{WIDTH} x {HEIGHT} JPEG, median of {args.runs} runs, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"backend {models.get('face_landmark').name}")
        print("\n| stage | x reference | ms (this machine) |\n|---|---:|---:|")
        for name, ms in results.items():
            print(f"| {name} | {ms / reference:.1f} | {ms:.1f} |")
        REGISTRY.release_owner(owner)
        models.close()
    finally:
        if made:
            shutil.rmtree(args.image.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
