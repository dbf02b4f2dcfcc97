#!/usr/bin/env python3
"""What the privacy settings of the ONNX Runtime backend cost, per model.

Reference: a plain ``InferenceSession`` with ONNX Runtime's defaults (CPU arena and memory
patterns on, numpy inputs and outputs), with thread spinning bounded like the backend's so only
the privacy settings differ. Measured: ``OnnxRuntimeBackend`` (arena and patterns
off, IOBinding into secure buffers) with the same thread count, and its ``zeroise()``. Both run
in the same process, interleaved, on the same seeded inputs. Prints a Markdown table of medians
and ratios for BENCHMARKS.md.

    PYTHONPATH=. python bench/backends.py [--runs 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import onnxruntime as ort

from appliance.config import load_config
from appliance.models.manifest import load_manifest
from appliance.models.onnxruntime_backend import OnnxRuntimeBackend
from bench.timing import median_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config(env={})
    manifest = load_manifest()
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; onnxruntime "
          f"{ort.__version__}; {args.threads} threads; median of {args.runs} runs\n")
    print("| model | plain ORT (ms) | backend (ms) | backend / plain | zeroise (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for name, entry in manifest.models.items():
        if entry.profiles:  # dynamic shapes: timed in its effect's bench (bench/effects.py)
            continue
        path = entry.onnx_path(cfg.models.engines_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.intra_op.spin_duration_us", "500")
        plain = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        backend = OnnxRuntimeBackend(path, entry.onnx_sha256, name, threads=args.threads)
        rng = np.random.default_rng(0)
        feeds = {t.name: rng.uniform(-1, 1, t.shape).astype(t.dtype) for t in entry.inputs}
        for _ in range(10):  # warm both
            plain.run(None, feeds)
            backend.run(feeds)
        plain_ms, backend_ms = [], []
        for _ in range(5):  # interleave blocks so drift hits both alike
            plain_ms.append(median_ms(lambda p=plain, f=feeds: p.run(None, f), args.runs // 5))
            backend_ms.append(median_ms(lambda b=backend, f=feeds: b.run(f), args.runs // 5))
        zeroise_ms = median_ms(backend.zeroise, args.runs)
        p, b = statistics.median(plain_ms), statistics.median(backend_ms)
        print(f"| {name} | {p:.2f} | {b:.2f} | {b / p:.2f} | {zeroise_ms:.3f} |")
        backend.close()


if __name__ == "__main__":
    main()
