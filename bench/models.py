#!/usr/bin/env python3
"""Median latency of each converted model in ONNX Runtime vs. the original in LiteRT/XNNPACK.

Both run in the same process, with the same thread count, on the same input, interleaved in
rounds so background load on a shared machine hits both alike. Reported as a ratio
(ONNX Runtime / LiteRT: below 1.0 means ONNX Runtime is faster). Three ONNX Runtime variants:

* ``booth``: the service's own backend (appliance.models.onnxruntime_backend: secure I/O
  buffers, memory arena off so no activation outlives a run, worker threads spin for at most
  500 us after their last work);
* ``arena``: the same session options but with ONNX Runtime's memory arena on (its default),
  which LiteRT also has: the cost of the privacy choice, shown separately;
* ``nospin``: the booth's options but with worker threads not allowed to spin at all: what the
  bounded spinning gains;
* ``loaded``: the booth's backend with the thread count the loader gives it, where the
  manifest caps it (``cpu_threads``) below ``--threads``; otherwise the same as ``booth``;
* ``defaults``: arena on and worker threads allowed to spin between ops (ONNX Runtime's
  defaults; XNNPACK's thread pool spins too): the like-for-like comparison with LiteRT.

Each engine runs its batch of runs after a pause (``--settle``) long enough for the previous
engine's spinning worker threads to go to sleep: ONNX Runtime's keep a core busy for tens of
milliseconds after a run, which would otherwise slow whichever engine runs next on a 2-core
machine.

Usage: python bench/models.py [--threads 2] [--rounds 30] [--runs 10] [--settle 0.1]
       [--repeat 3] [MODEL ...]
Needs the built models (`make models`) and the dev extra (ai-edge-litert).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.models.manifest import ModelEntry, load_manifest  # noqa: E402
from appliance.models.onnxruntime_backend import (  # noqa: E402
    OnnxRuntimeBackend,
    session_options,
)
from tests.litert_reference import with_builtin_transpose_conv  # noqa: E402


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_model(entry: ModelEntry, engines: Path, threads: int, rounds: int,
                runs: int, settle: float) -> dict[str, float]:
    """Median milliseconds per engine for one model, runs interleaved round by round."""
    tfl = engines / "cache" / "tflite" / Path(entry.source.member).name
    onnx_path = entry.onnx_path(engines)
    _, _, h, w = entry.inputs[0].shape
    lo, hi = entry.normalisation
    x = np.random.default_rng(0).uniform(lo, hi, (1, h, w, 3)).astype(np.float32)
    feeds = {entry.inputs[0].name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))}

    interp = Interpreter(model_content=with_builtin_transpose_conv(tfl.read_bytes()),
                         num_threads=threads)
    interp.allocate_tensors()
    in_index = interp.get_input_details()[0]["index"]

    def litert() -> None:
        interp.set_tensor(in_index, x)
        interp.invoke()

    booth = OnnxRuntimeBackend(onnx_path, entry.onnx_sha256, entry.name, threads=threads)
    options = session_options(threads)
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    arena = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    options = session_options(threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    nospin = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()  # ONNX Runtime's defaults, same threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    defaults = ort.InferenceSession(str(onnx_path), options,
                                    providers=["CPUExecutionProvider"])
    loaded = None
    if 0 < entry.cpu_threads < threads:
        loaded = OnnxRuntimeBackend(onnx_path, entry.onnx_sha256, entry.name,
                                    threads=entry.cpu_threads)
    engines_fn: dict[str, Callable[[], object]] = {
        "litert": litert, "booth": lambda: booth.run(feeds),
        "arena": lambda: arena.run(None, feeds),
        "nospin": lambda: nospin.run(None, feeds),
        "defaults": lambda: defaults.run(None, feeds)}
    if loaded is not None:
        engines_fn["loaded"] = lambda: loaded.run(feeds)
    samples: dict[str, list[float]] = {k: [] for k in engines_fn}
    for fn in engines_fn.values():
        timed(fn, 10)  # warm-up
    for _ in range(rounds):
        for key, fn in engines_fn.items():
            time.sleep(settle)  # let the previous engine's spinning threads go to sleep
            fn()  # untimed: the first run after a pause wakes the thread pool
            samples[key] += timed(fn, runs)
    booth.close()
    if loaded is not None:
        loaded.close()
    medians = {k: statistics.median(v) for k, v in samples.items()}
    medians.setdefault("loaded", medians["booth"])
    return medians


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--runs", type=int, default=10, help="runs per engine per round")
    ap.add_argument("--settle", type=float, default=0.1,
                    help="seconds of pause before each engine's runs in a round")
    ap.add_argument("--repeat", type=int, default=3,
                    help="whole measurements per model; the ratio reported is their median")
    args = ap.parse_args()
    manifest = load_manifest()
    engines = manifest.path.parent
    names = args.models or list(manifest.models)
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs visible; threads={args.threads}; "
          f"onnxruntime {ort.__version__}; {args.repeat} x {args.rounds} rounds x {args.runs} "
          f"runs; load average {os.getloadavg()[0]:.1f}")
    print(f"{'model':22} {'LiteRT ms':>9} {'ORT booth ms':>12} {'booth/LiteRT':>18} "
          f"{'arena/LiteRT':>18} {'nospin/LiteRT':>18} {'defaults/LiteRT':>18} "
          f"{'loaded/LiteRT':>18}")
    for name in names:
        reps = [bench_model(manifest.models[name], engines, args.threads, args.rounds,
                            args.runs, args.settle) for _ in range(args.repeat)]

        def ratio(key: str, reps: list[dict[str, float]] = reps) -> str:
            values = sorted(r[key] / r["litert"] for r in reps)
            return f"{statistics.median(values):.2f} [{values[0]:.2f}-{values[-1]:.2f}]"

        litert_ms = statistics.median(r["litert"] for r in reps)
        booth_ms = statistics.median(r["booth"] for r in reps)
        print(f"{name:22} {litert_ms:9.2f} {booth_ms:12.2f} {ratio('booth'):>18} "
              f"{ratio('arena'):>18} {ratio('nospin'):>18} {ratio('defaults'):>18} "
              f"{ratio('loaded'):>18}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
