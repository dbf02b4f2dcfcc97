"""Runs the generated warp graph through the project's ONNX Runtime backend.

``ephemera build`` writes the builder's graph to ``ENGINES_DIR/onnx/baby_warp.onnx`` (its sha256
pinned in ``appliance.effects.graphs.baby_warp``). When the manifest lists ``baby_warp`` (as a
generated graph), ``models.get`` opens it like every model, on ONNX Runtime or as a TensorRT
engine; until then the built file is opened here with the same backend (secure, IO-bound
buffers; the hash checked at load).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy.typing as npt

from appliance.effects.graphs.baby_warp import NAME, ONNX_SHA256, build_baby_warp
from appliance.models.backend import Backend, BackendError
from appliance.models.errors import HashMismatchError
from appliance.vision.tensors import ModelProvider


def graph_path(engines_dir: Path) -> Path:
    return engines_dir / "onnx" / f"{NAME}.onnx"


def write_graph(engines_dir: Path) -> Path:
    """Build time: the graph's bytes, checked against the pin, written atomically."""
    data = build_baby_warp().SerializeToString()
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256:
        raise HashMismatchError(f"generated {NAME}: sha256 {digest} does not match the pinned "
                                f"{ONNX_SHA256}", remedy="the graph builder's output changed")
    out = graph_path(engines_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


def is_built(engines_dir: Path) -> bool:
    path = graph_path(engines_dir)
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == ONNX_SHA256


@lru_cache(maxsize=2)
def _opened(engines_dir: Path) -> Backend:
    from appliance.models.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(graph_path(engines_dir), ONNX_SHA256, NAME)


def warp_backend(models: ModelProvider, engines_dir: Path) -> Backend:
    """The manifest's ``baby_warp`` when it has one, else the built graph opened here."""
    try:
        return models.get(NAME)
    except BackendError:
        return _opened(engines_dir)


def run_warp(models: ModelProvider, engines_dir: Path,
             feeds: Mapping[str, npt.NDArray[Any]]) -> Mapping[str, npt.NDArray[Any]]:
    return warp_backend(models, engines_dir).run(feeds)
