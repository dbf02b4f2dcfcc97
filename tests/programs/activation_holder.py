"""Run a model three times and wait, so a memory scan can look for its activations.

``python activation_holder.py MODEL SHA256 arena|backend SHAPE VALUE``: ``arena`` runs a plain
ONNX Runtime session with its CPU arena (the control: activations stay), ``backend`` runs the
booth's backend. Prints "ready <sum>" and waits for a line on stdin. Run by
tests/test_onnxruntime_backend.py.
"""

from __future__ import annotations

import ast
import sys

import numpy as np
import onnxruntime as ort

from appliance.models.onnxruntime_backend import OnnxRuntimeBackend


def main(path: str, sha: str, mode: str, shape_text: str, value: str) -> None:
    shape = tuple(int(d) for d in ast.literal_eval(shape_text))
    x = np.full(shape, np.float32(value), dtype=np.float32)
    total = None
    if mode == "arena":
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = True
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for _ in range(3):
            total = session.run(None, {"x": x})[0]
    else:
        backend = OnnxRuntimeBackend(path, sha, "canary", threads=1)
        for _ in range(3):  # later runs reuse the memory pattern planned by the first
            total = backend.run({"x": x})["total"]
    print("ready", float(np.asarray(total)), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main(*sys.argv[1:6])
