#!/usr/bin/env python3
"""What wiping a TensorRT model's GPU memory costs, on a real NVIDIA GPU.

``TensorRTBackend.zeroise()`` clears every device buffer, the activation memory and the pinned
host buffers after each job. Measured here against two references taken in the same run on the
same device: one ``run()`` of the model, and one device-to-device copy of the activation block
(the memory bandwidth floor for touching those bytes). The engine is the stand-in of
tests/gpu/kernel_tensorrt.py (one CUDA kernel, not TensorRT); the buffers, copies and wipes are
the real driver's. Needs pycuda and a CUDA device. Prints a Markdown table for BENCHMARKS.md.

    PYTHONPATH=. python bench/gpu_wipe.py [--runs 50]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.timing import median_ms

SHAPE = (1, 3, 512, 512)
ACTIVATION_MIB = (16, 256, 2048)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    import pycuda.driver as cuda

    from appliance.models.tensorrt_backend import TensorRTBackend
    from appliance.models.tensorrt_support import CudaContext
    from tests.gpu import kernel_tensorrt

    sys.modules["tensorrt"] = kernel_tensorrt.module()
    context = CudaContext.shared(cuda)
    print(f"device: {context.device.name()}, compute capability "
          f"{'.'.join(map(str, context.device.compute_capability()))}, "
          f"driver {cuda.get_driver_version()}, runs per figure: {args.runs} (median)\n")
    print("| activation block | run() ms | zeroise() ms | zeroise / run | d2d copy of block ms "
          "| zeroise / copy |")
    print("|---:|---:|---:|---:|---:|---:|")
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for mib in ACTIVATION_MIB:
            data = kernel_tensorrt.engine_bytes(SHAPE, mib << 20)
            path = Path(folder) / f"bench-{mib}.engine"
            path.write_bytes(data)
            backend = TensorRTBackend(path, hashlib.sha256(data).hexdigest(), "bench")
            try:
                run_ms = median_ms(lambda b=backend: b.run({"x": x}), args.runs, warm_up=1)
                wipe_ms = median_ms(backend.zeroise, args.runs, warm_up=1)
                with context.current():
                    other = cuda.mem_alloc(mib << 20)

                    def copy(o=other, b=backend, n=mib << 20) -> None:
                        cuda.memcpy_dtod(o, b._scratch, n)
                        cuda.Context.synchronize()

                    copy_ms = median_ms(copy, args.runs, warm_up=1)
                    other.free()
            finally:
                backend.close()
            print(f"| {mib} MiB | {run_ms:.3f} | {wipe_ms:.3f} | {wipe_ms / run_ms:.2f} "
                  f"| {copy_ms:.3f} | {wipe_ms / copy_ms:.2f} |")


if __name__ == "__main__":
    main()
