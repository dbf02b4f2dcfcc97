"""End-to-end timing of the effects, against a floor measured in the same run.

Kiss video: from two 12-megapixel JPEGs (scikit-image's astronaut scaled up, and its mirror
image) to the encoded MP4 and poster: decode both, faces and person masks, cut-outs, the frames
through the frame graph, H.264. The floor is what no kiss can avoid: decoding both JPEGs plus
encoding the same number of plain frames (a moving gradient) with the same encoder and settings.
Figures are medians of ``--runs`` rounds, kiss and floor interleaved so a busy machine slows both
alike; the ratio is what to compare across machines.

    python bench/effects.py kiss [--runs 3] [--duration 4]

Needs the built models (`ephemera build`). Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.config import load_config
from appliance.effects.kiss_parts.compose import Person, make_kiss
from appliance.effects.kiss_parts.frame_graph import FRAME_HEIGHT, FRAME_WIDTH
from appliance.effects.kiss_parts.timeline import frame_count
from appliance.media.decode import decode_image
from appliance.media.video import Libx264Encoder, VideoSpec
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline

WIDTH, HEIGHT, FPS = 4000, 3000, 24


def twelve_megapixel_jpegs() -> list[bytes]:
    """The astronaut scaled to 3000 px high on a 4000 x 3000 canvas with sensor noise, and its
    mirror image, as JPEG quality 90 (a phone's portrait)."""
    import skimage.data

    canvas = np.full((HEIGHT, WIDTH, 3), 120, np.uint8)
    person = cv2.resize(skimage.data.astronaut()[:, :, ::-1], (HEIGHT, HEIGHT),
                        interpolation=cv2.INTER_CUBIC)
    canvas[:, 500:500 + HEIGHT] = person
    noise = np.random.default_rng(0).normal(0, 4, canvas.shape)
    canvas = np.clip(canvas + noise, 0, 255).astype(np.uint8)
    out = []
    for image in (canvas, np.ascontiguousarray(canvas[:, ::-1])):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(data.tobytes())
    return out


def floor(jpegs: list[bytes], frames: int, owner: str) -> dict[str, float]:
    """Decode both photos, then encode ``frames`` plain frames."""
    started = time.perf_counter()
    for data in jpegs:
        decode_image(memoryview(data), owner)
    decoded = time.perf_counter()
    encoder = Libx264Encoder(VideoSpec(FRAME_WIDTH, FRAME_HEIGHT, FPS), owner)
    frame = np.empty((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    ramp = np.linspace(30, 220, FRAME_WIDTH, dtype=np.float32)
    for index in range(frames):
        frame[:] = np.roll(ramp, index * 8).astype(np.uint8)[None, :, None]
        encoder.add(frame)
    encoder.finish()
    done = time.perf_counter()
    REGISTRY.release_owner(owner)
    return {"total": done - started, "decode": decoded - started, "encode": done - decoded}


def kiss(jpegs: list[bytes], pipeline: FacePipeline, models: Any, duration: float,
         owner: str) -> dict[str, float]:
    started = time.perf_counter()
    people = []
    decode_s = faces_s = 0.0
    for data in jpegs:
        t0 = time.perf_counter()
        _buffer, bgr = decode_image(memoryview(data), owner)
        t1 = time.perf_counter()
        [face] = pipeline.analyse(bgr, owner, faces_needed=1, need_eyes_open=True)
        people.append(Person(bgr, pipeline.segment(bgr, owner), face.mesh))
        decode_s += t1 - t0
        faces_s += time.perf_counter() - t1
    made = make_kiss(people[0], people[1], owner, duration=duration, fps=FPS, models=models)
    done = time.perf_counter()
    times = made.times
    REGISTRY.release_owner(owner)
    pipeline.zeroise()
    render = times.geometry + times.graph
    return {"total": done - started, "decode": decode_s, "faces": faces_s,
            "geometry": times.geometry, "graph": times.graph, "encode": times.encode,
            "render_fps": times.frames / render, "encode_fps": times.frames / times.encode,
            "frames": float(times.frames)}


def bench_kiss(runs: int, duration: float) -> None:
    models = ModelSet(load_config())
    pipeline = FacePipeline(models)
    jpegs = twelve_megapixel_jpegs()
    frames = frame_count(duration, FPS)
    kisses, floors = [], []
    kiss(jpegs, pipeline, models, duration, "bench-warm")  # model sessions, page cache
    for run in range(runs):
        kisses.append(kiss(jpegs, pipeline, models, duration, f"bench-kiss-{run}"))
        floors.append(floor(jpegs, frames, f"bench-floor-{run}"))

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    k_total, f_total = median(kisses, "total"), median(floors, "total")
    print(f"Kiss video, {duration:g} s ({frames} frames of {FRAME_WIDTH}x{FRAME_HEIGHT} at "
          f"{FPS} fps, libx264 preset veryfast crf 20), from two 12-MP JPEGs; median of {runs}"
          f"; {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}\n")
    print("| stage | kiss (s) | floor (s) |")
    print("|---|---:|---:|")
    print(f"| decode both JPEGs | {median(kisses, 'decode'):.2f} | "
          f"{median(floors, 'decode'):.2f} |")
    print(f"| faces + person masks | {median(kisses, 'faces'):.2f} | - |")
    print(f"| frame geometry (maps, grids) | {median(kisses, 'geometry'):.2f} | - |")
    print(f"| frame graph (sampling, compositing) | {median(kisses, 'graph'):.2f} | - |")
    print(f"| H.264 encode + faststart | {median(kisses, 'encode'):.2f} | "
          f"{median(floors, 'encode'):.2f} |")
    print(f"| **total** | **{k_total:.2f}** | **{f_total:.2f}** |")
    print(f"\nkiss / floor: {k_total / f_total:.2f}x; render {median(kisses, 'render_fps'):.1f} "
          f"fps, encode {median(kisses, 'encode_fps'):.1f} fps (floor encode "
          f"{frames / median(floors, 'encode'):.1f} fps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("effect", choices=["kiss"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    if args.effect == "kiss":
        bench_kiss(args.runs, args.duration)


if __name__ == "__main__":
    main()
