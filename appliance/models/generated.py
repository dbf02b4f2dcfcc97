"""Run the builder a ``source = "generated"`` manifest entry names, as the build does.

Why here and by name: the manifest names each pixel graph's builder as
``"appliance.effects.graphs.<module>:<function>"``, so the build (a models-layer step) finds it
by that name, like a plugin, and never imports the effects layer above it.
"""

from __future__ import annotations

import importlib

import onnx

from appliance.models.tflite_to_onnx import serialize

GRAPHS_PACKAGE = "appliance.effects.graphs."


def generate(generator: str) -> bytes:
    """Run a ``"package.module:function"`` builder and return the serialised model."""
    module_name, _, function = generator.partition(":")
    if not module_name.startswith(GRAPHS_PACKAGE) or not function:
        raise ValueError(f"generator {generator!r} must name a builder function in "
                         "appliance.effects.graphs, e.g. 'appliance.effects.graphs.warp:warp'")
    builder = getattr(importlib.import_module(module_name), function)
    model = builder()
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"generator {generator!r} did not return an onnx.ModelProto")
    return serialize(model)
