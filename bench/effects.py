"""The studio headshot from a 12-megapixel JPEG: time to the first style and to all four.

Reference (the floor), measured in the same run, interleaved with the effect: decoding the
12-MP JPEG (the service's decoder, into a secure buffer) plus encoding four 1024 x 1280 JPEGs
(the effect's encoder). The effect's figures include that decode, the face pipeline (detect,
mesh, gates: what an upload runs), the per-photo work and each style with its encoding: from
the bytes to each output ready. Per-stage times are the effect's own. For the pixel graphs
whose ONNX Runtime figure is far from the same operation in OpenCV, both are measured.

The baby predictor from two 12-MP JPEGs (the astronaut and her mirror image), through
``ephemera run``'s own path (decode, face gates, the effect, encoding, the file on tmpfs),
against its floor in the same run: decoding both JPEGs and encoding one 1024 x 1024 JPEG.

The kiss video from two 12-MP JPEGs (the astronaut and her mirror image) to the encoded MP4
and poster: decode both, faces and person masks, cut-outs, the frames through the frame graph,
H.264. Its floor is decoding both JPEGs plus encoding the same number of plain frames (a moving
gradient) with the same encoder and settings, interleaved with the effect.

    python bench/effects.py [--runs 5] [--effect headshot|baby|kiss|all] [--duration 4]

Needs the built models (`ephemera build`). Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.config import load_config
from appliance.effects import headshot
from appliance.effects.graphs.kiss import FRAME_HEIGHT, FRAME_WIDTH
from appliance.effects.graphs.warp import PORTRAIT, crop_box_roi, normalised_matrix
from appliance.effects.headshot_parts import render
from appliance.effects.kiss_parts.compose import Person, make_kiss
from appliance.effects.kiss_parts.timeline import frame_count
from appliance.effects.registry import get_effect
from appliance.jobs.local_run import read_photo, run_effect
from appliance.media.decode import ImageLimits, decode_image
from appliance.media.encode import encode_image
from appliance.media.video import Libx264Encoder, VideoSpec
from appliance.models.loader import ModelSet
from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline
from bench.portrait import astronaut_12mp, jpeg_bytes


def make_jpeg() -> bytes:
    """A 12-MP photo: scikit-image's astronaut scaled up (face ~620 px), with sensor noise."""
    return jpeg_bytes(astronaut_12mp())


def floor_once(jpeg: bytes, sample: np.ndarray) -> float:
    owner = f"bench-floor-{uuid.uuid4().hex}"
    started = time.perf_counter()
    try:
        data_buf = REGISTRY.allocate(len(jpeg), owner=owner)
        data_buf.view()[:] = np.frombuffer(jpeg, np.uint8)
        decode_image(data_buf.memoryview(), owner)
        for _ in range(4):
            encoded, view = encode_image(sample, "jpeg", owner=owner, quality=render.JPEG_QUALITY)
            del view
            encoded.release()
        return time.perf_counter() - started
    finally:
        REGISTRY.release_owner(owner)


def effect_once(jpeg: bytes, models: ModelSet, pipeline: FacePipeline) -> dict[str, float]:
    owner = f"bench-headshot-{uuid.uuid4().hex}"
    times: dict[str, float] = {}
    started = time.perf_counter()
    try:
        data_buf = REGISTRY.allocate(len(jpeg), owner=owner)
        data_buf.view()[:] = np.frombuffer(jpeg, np.uint8)
        _buf, bgr = decode_image(data_buf.memoryview(), owner)
        times["decode"] = time.perf_counter() - started
        mark = time.perf_counter()
        faces = pipeline.analyse(bgr, owner, faces_needed=1)
        times["faces (detect, mesh, gates)"] = time.perf_counter() - mark
        ready: list[float] = []
        assert faces[0].mesh is not None
        prepared = render.render(bgr, faces[0].mesh, models, owner,
                                 list(headshot.styles().values()),
                                 lambda style, view: ready.append(time.perf_counter()))
        times["first style"] = ready[0] - started
        times["all four"] = ready[-1] - started
        for stage, seconds in prepared.timings.items():
            group = stage.split(":")[0]
            times[group] = times.get(group, 0.0) + seconds
        return times
    finally:
        REGISTRY.release_owner(owner)
        models.zeroise_all()


def graph_vs_opencv(models: ModelSet, runs: int) -> list[tuple[str, float, float, str]]:
    """ONNX Runtime graph vs the same operation in OpenCV, on the same inputs (ms)."""
    rng = np.random.default_rng(1)
    source = cv2.resize(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8), (820, 1000),
                        interpolation=cv2.INTER_CUBIC)
    height, width = PORTRAIT
    scale = 0.78
    roi = crop_box_roi(4.0, 4.0, 4.0 + scale * (width - 1), 4.0 + scale * (height - 1),
                       820, 1000, width, height)
    affine = np.array([[scale, 0.0, 4.0], [0.0, scale, 4.0]])
    frame = models.get("fx_frame_portrait")
    warp = models.get("fx_warp_portrait")
    matrix = normalised_matrix(affine, 820, 1000)

    def median(fn: Any) -> float:
        fn()
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples) * 1000

    cv_warp = median(lambda: cv2.warpAffine(source, affine, (width, height),
                                            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                            borderMode=cv2.BORDER_REPLICATE))
    return [
        ("fx_frame_portrait (Resize, bicubic, uint8)",
         median(lambda: frame.run({"image": source, "roi": roi})), cv_warp,
         "cv2.warpAffine INTER_CUBIC"),
        ("fx_warp_portrait (GridSample, bicubic, float)",
         median(lambda: warp.run({"image": source, "matrix": matrix})), cv_warp,
         "cv2.warpAffine INTER_CUBIC"),
    ]


def baby_jpegs(folder: Path) -> list[Path]:
    """Two 12-MP photos: the astronaut scaled up (face about 620 px) and her mirror image."""
    paths = []
    for index in (0, 1):
        paths.append(folder / f"parent{index}.jpg")
        paths[-1].write_bytes(jpeg_bytes(astronaut_12mp(noise_seed=index, mirror=index == 1)))
    return paths


def baby_floor(paths: list[Path]) -> None:
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


def baby_bench(runs: int, models: ModelSet, pipeline: FacePipeline) -> None:
    """Two 12-MP JPEGs to baby.jpg on tmpfs, against decoding both plus one encode."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="bench-baby-"))
    try:
        paths = baby_jpegs(folder)
        effect = get_effect("baby")
        totals, floors, stages = [], [], []
        for run in range(runs + 1):  # the first round warms up (models opened)
            since = time.perf_counter()
            baby_floor(paths)
            low = time.perf_counter() - since
            out = folder / f"out{run}"
            since = time.perf_counter()
            summary = run_effect(effect, paths, {}, out, pipeline)
            total = time.perf_counter() - since
            shutil.rmtree(out)
            if run:
                floors.append(low)
                totals.append(total)
                stages.append(summary["stages_s"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    total, low = statistics.median(totals) * 1000, statistics.median(floors) * 1000
    print(f"Baby predictor: {runs} interleaved runs, medians; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print()
    print("| measure | ms | / floor |")
    print("|---|---:|---:|")
    print(f"| floor: decode two 12-MP JPEGs + encode one 1024x1024 JPEG | {low:.0f} | 1.00 |")
    print(f"| baby, two JPEG files to baby.jpg written | {total:.0f} | {total / low:.2f} |")
    print()
    print("| stage (median of runs) | ms |")
    print("|---|---:|")
    for name in sorted({n for s in stages for n in s}):
        print(f"| {name} | {statistics.median(s.get(name, 0.0) for s in stages) * 1000:.0f} |")


KISS_FPS = 24


def kiss_jpegs() -> list[bytes]:
    """The astronaut scaled to 3000 px high on a 4000 x 3000 canvas with sensor noise, and its
    mirror image, as JPEG quality 90 (a phone's portrait)."""
    canvas = astronaut_12mp()
    return [jpeg_bytes(image) for image in (canvas, np.ascontiguousarray(canvas[:, ::-1]))]


def kiss_floor(jpegs: list[bytes], frames: int, owner: str) -> dict[str, float]:
    """Decode both photos, then encode ``frames`` plain frames."""
    started = time.perf_counter()
    for data in jpegs:
        decode_image(memoryview(data), owner)
    decoded = time.perf_counter()
    encoder = Libx264Encoder(VideoSpec(FRAME_WIDTH, FRAME_HEIGHT, KISS_FPS), owner)
    frame = np.empty((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8)
    ramp = np.linspace(30, 220, FRAME_WIDTH, dtype=np.float32)
    for index in range(frames):
        frame[:] = np.roll(ramp, index * 8).astype(np.uint8)[None, :, None]
        encoder.add(frame)
    encoder.finish()
    done = time.perf_counter()
    REGISTRY.release_owner(owner)
    return {"total": done - started, "decode": decoded - started, "encode": done - decoded}


def kiss_once(jpegs: list[bytes], pipeline: FacePipeline, models: Any, duration: float,
         owner: str) -> dict[str, float]:
    started = time.perf_counter()
    people = []
    decode_s = faces_s = 0.0
    for data in jpegs:
        t0 = time.perf_counter()
        _buffer, bgr = decode_image(memoryview(data), owner)
        t1 = time.perf_counter()
        [face] = pipeline.analyse(bgr, owner, faces_needed=1, need_eyes_open=True)
        assert face.mesh is not None
        people.append(Person(bgr, pipeline.segment(bgr, owner), face.mesh))
        decode_s += t1 - t0
        faces_s += time.perf_counter() - t1
    made = make_kiss(people[0], people[1], owner, duration=duration, fps=KISS_FPS, models=models)
    done = time.perf_counter()
    times = made.times
    REGISTRY.release_owner(owner)
    pipeline.zeroise()
    render = times.geometry + times.graph
    return {"total": done - started, "decode": decode_s, "faces": faces_s,
            "geometry": times.geometry, "graph": times.graph, "encode": times.encode,
            "render_fps": times.frames / render, "encode_fps": times.frames / times.encode,
            "frames": float(times.frames)}


def kiss_graph_vs_opencv(models: Any, runs: int) -> tuple[float, float]:
    """Median ms of one frame of the frame graph, and of the same sampling and compositing in
    OpenCV (two cv2.remap of the cut-outs, "over" in NumPy), on the same smooth grids."""
    from appliance.effects.graphs.kiss import CUT_HEIGHT, CUT_WIDTH
    from appliance.effects.kiss_parts.compose import GRAPH

    graph = models.get(GRAPH)
    rng = np.random.default_rng(0)
    feeds = {spec.name: graph.input_buffer(spec.name) for spec in graph.inputs}
    feeds["backdrop"][:] = rng.uniform(0, 255, feeds["backdrop"].shape)
    ys, xs = np.mgrid[0:FRAME_HEIGHT, 0:FRAME_WIDTH].astype(np.float32)
    maps = []
    for prefix, shift in (("back", -0.3), ("front", 0.3)):
        rgba = feeds[f"{prefix}_rgba"]
        rgba[:] = rng.uniform(0, 1, rgba.shape)
        rgba[:, :3] *= 255 * rgba[:, 3:]
        gx = (xs - FRAME_WIDTH / 2) / (FRAME_WIDTH / 2) * 1.2 + shift
        gy = (ys - FRAME_HEIGHT / 2) / (FRAME_HEIGHT / 2) * 0.8
        feeds[f"{prefix}_grid"][0, ..., 0], feeds[f"{prefix}_grid"][0, ..., 1] = gx, gy
        maps.append((rgba[0].transpose(1, 2, 0).copy(), ((gx + 1) * CUT_WIDTH - 1) / 2,
                     ((gy + 1) * CUT_HEIGHT - 1) / 2))
    backdrop = feeds["backdrop"][0].transpose(1, 2, 0).copy()

    def opencv() -> None:
        under = backdrop.copy()
        for image, map_x, map_y in maps:
            sampled = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            under = sampled[..., :3] + under * (1 - sampled[..., 3:4])
        np.clip(under, 0, 255).round().astype(np.uint8)

    ours, theirs = [], []
    graph.run(feeds)
    opencv()
    for _ in range(runs):
        started = time.perf_counter()
        graph.run(feeds)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        opencv()
        theirs.append(time.perf_counter() - started)
    graph.zeroise()
    return statistics.median(ours) * 1000, statistics.median(theirs) * 1000


def bench_kiss(runs: int, duration: float) -> None:
    models = ModelSet(load_config())
    pipeline = FacePipeline(models)
    jpegs = kiss_jpegs()
    frames = frame_count(duration, KISS_FPS)
    kisses, floors = [], []
    kiss_once(jpegs, pipeline, models, duration, "bench-warm")  # model sessions, page cache
    for run in range(runs):
        kisses.append(kiss_once(jpegs, pipeline, models, duration, f"bench-kiss-{run}"))
        floors.append(kiss_floor(jpegs, frames, f"bench-floor-{run}"))

    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    k_total, f_total = median(kisses, "total"), median(floors, "total")
    print(f"Kiss video, {duration:g} s ({frames} frames of {FRAME_WIDTH}x{FRAME_HEIGHT} at "
          f"{KISS_FPS} fps, libx264 preset veryfast crf 20), from two 12-MP JPEGs; median of {runs}"
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
    graph_ms, opencv_ms = kiss_graph_vs_opencv(models, 5)
    print(f"\none frame: frame graph (ONNX Runtime) {graph_ms:.0f} ms, the same sampling and "
          f"compositing in OpenCV {opencv_ms:.0f} ms; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"\nkiss / floor: {k_total / f_total:.2f}x; render {median(kisses, 'render_fps'):.1f} "
          f"fps, encode {median(kisses, 'encode_fps'):.1f} fps (floor encode "
          f"{frames / median(floors, 'encode'):.1f} fps)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--effect", choices=("headshot", "baby", "kiss", "all"), default="all")
    parser.add_argument("--duration", type=float, default=4.0, help="kiss video seconds")
    args = parser.parse_args()
    cfg = load_config()
    if args.effect in ("kiss", "all"):
        bench_kiss(args.runs, args.duration)
        if args.effect == "kiss":
            return 0
        print()
    if args.effect in ("baby", "all"):
        with ModelSet(cfg) as models:
            baby_bench(args.runs, models, FacePipeline(models))
        if args.effect == "baby":
            return 0
        print()
    jpeg = make_jpeg()
    sample = cv2.resize(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[:, 500:3500],
                        (PORTRAIT[1], PORTRAIT[0]), interpolation=cv2.INTER_AREA)
    with ModelSet(cfg) as models:
        pipeline = FacePipeline(models)
        for style in headshot.styles().values():  # loaded once at start-up by the service
            style.table()
            style.backdrop_image()
        effect_once(jpeg, models, pipeline)  # warm-up: models opened, buffers bound
        floor_once(jpeg, sample)
        floors, effects = [], []
        for _ in range(args.runs):  # interleaved: a busy machine slows both alike
            floors.append(floor_once(jpeg, sample))
            effects.append(effect_once(jpeg, models, pipeline))
        comparisons = graph_vs_opencv(models, args.runs)
    floor = statistics.median(floors) * 1000
    keys = list(effects[0])
    med = {k: statistics.median(e[k] for e in effects) * 1000 for k in keys}
    cpus = len(os.sched_getaffinity(0))
    print(f"Machine: {platform.machine()}, {cpus} CPU(s) available, {platform.processor() or ''}"
          f" Python {platform.python_version()}; {args.runs} interleaved runs, medians; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| measure | ms | / floor |")
    print("|---|---:|---:|")
    print(f"| floor: decode 12-MP JPEG + encode four 1024x1280 JPEGs | {floor:.0f} | 1.00 |")
    for key in ("first style", "all four"):
        print(f"| headshot, bytes to {key} ready | {med[key]:.0f} | {med[key] / floor:.2f} |")
    print()
    print("| stage (median of runs) | ms |")
    print("|---|---:|")
    for key in keys:
        if key not in ("first style", "all four"):
            print(f"| {key} | {med[key]:.0f} |")
    print()
    print("| graph (ONNX Runtime) | ms | OpenCV | ms |")
    print("|---|---:|---|---:|")
    for name, ours, theirs, what in comparisons:
        print(f"| {name} | {ours:.0f} | {what} | {theirs:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
