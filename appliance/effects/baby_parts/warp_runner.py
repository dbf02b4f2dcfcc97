"""Runs the generated warp graph ``baby_warp`` through the booth's models.

The graph is a manifest entry of its own (``source = "generated"``): ``ephemera build`` writes it
from ``appliance.effects.graphs.baby_warp`` and pins its sha256, and ``models.get`` opens it like
every model, on ONNX Runtime or as a TensorRT engine, with the backend's own wipeable buffers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from appliance.effects.graphs.baby_warp import NAME
from appliance.vision.tensors import ModelProvider


def run_warp(models: ModelProvider,
             feeds: Mapping[str, npt.NDArray[Any]]) -> Mapping[str, npt.NDArray[Any]]:
    return models.get(NAME).run(feeds)
