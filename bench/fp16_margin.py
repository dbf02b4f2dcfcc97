#!/usr/bin/env python3
"""How far inside the FP16 validation bound an FP16 engine of each booth model should land.

No GPU is needed: each model is run in ONNX Runtime twice, as converted and with every weight
and every activation rounded to float16 (a Cast to float16 and back after each node), on the
builder's own validation inputs. The ratio bound / observed is the safety margin of the
tolerance in ``appliance.models.tensorrt_build``, for its two parts: the 99th percentile of the
differences, and the largest one against ten times the bound (a proxy: TensorRT's FP16 kernels
accumulate differently, but in the same precision).

    PYTHONPATH=. python bench/fp16_margin.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from appliance.config import load_config
from appliance.models.manifest import load_manifest
from appliance.models.onnxruntime_backend import OnnxRuntimeBackend
from appliance.models.tensorrt_build import OUTLIER_FACTOR, TOLERANCES, validation_feeds


def round_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            rounded = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(rounded, init.name))
    nodes: list[Any] = []
    for node in graph.node:
        casts = []
        for index, name in enumerate(node.output):
            node.output[index] = f"{name}__fp32"
            casts += [helper.make_node("Cast", [f"{name}__fp32"], [f"{name}__fp16"],
                                       to=TensorProto.FLOAT16),
                      helper.make_node("Cast", [f"{name}__fp16"], [name], to=TensorProto.FLOAT)]
        nodes += [node, *casts]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    return model


def main() -> None:
    cfg = load_config(env={})
    atol, rtol = TOLERANCES["fp16"]
    print("| model | output | p99 diff | max diff | bound | margin p99 | margin max |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, entry in load_manifest().models.items():
        if entry.precision != "fp16":  # only models allowed reduced precision are margined
            continue
        path = entry.onnx_path(cfg.models.engines_dir)
        backend = OnnxRuntimeBackend(path, entry.onnx_sha256, name, threads=1)
        rounded = ort.InferenceSession(round_to_fp16(onnx.load(str(path))).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        rows: dict[str, list[float]] = {}
        for feeds in validation_feeds(backend, *entry.normalisation):
            reference = {k: v.copy() for k, v in backend.run(feeds).items()}
            names = [o.name for o in rounded.get_outputs()]
            for out_name, value in zip(names, rounded.run(None, feeds), strict=True):
                diff = np.abs(value - reference[out_name])
                bound = atol + rtol * float(np.max(np.abs(reference[out_name])))
                p99, worst = float(np.percentile(diff, 99)), float(diff.max())
                margin = min(bound / max(p99, 1e-12), OUTLIER_FACTOR * bound / max(worst, 1e-12))
                if out_name not in rows or margin < rows[out_name][-1]:
                    rows[out_name] = [p99, worst, bound, margin]
        backend.close()
        for out_name, (p99, worst, bound, _margin) in rows.items():
            print(f"| {name} | {out_name} | {p99:.3g} | {worst:.3g} | {bound:.3g} | "
                  f"{bound / max(p99, 1e-12):.1f} | "
                  f"{OUTLIER_FACTOR * bound / max(worst, 1e-12):.1f} |")


if __name__ == "__main__":
    main()
