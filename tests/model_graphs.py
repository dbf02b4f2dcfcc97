"""Small ONNX graphs built in the tests, with NumPy references to check backends against.

Why build them here: the tests must not depend on the converted MediaPipe models (those need
`ephemera build`); these exercise the same operators (Conv, PRelu, Add, Sigmoid) at a size
that runs in milliseconds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ephemera-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def conv_prelu_weights(seed: int = 7) -> dict[str, npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32),
        "b": rng.normal(0, 0.1, (4,)).astype(np.float32),
        "slope": rng.uniform(0.05, 0.3, (4, 1, 1)).astype(np.float32),
        "shift": rng.normal(0, 1, (1, 4, 1, 1)).astype(np.float32),
    }


def conv_prelu_model(seed: int = 7, size: int = 8) -> bytes:
    """image (1,3,S,S) -> Conv 3x3 pad 1 -> PRelu -> Add shift -> 'features' (1,4,S,S);
    plus a second input 'gain' (1,4,1,1) multiplied in, and a Sigmoid output 'scores'."""
    w = conv_prelu_weights(seed)
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["conv", "slope"], ["act"]),
        helper.make_node("Add", ["act", "shift"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "gain"], ["features"]),
        helper.make_node("Sigmoid", ["features"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "conv_prelu",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size]),
         helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1, 4, 1, 1])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 4, size, size]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4, size, size])],
        initializer=[numpy_helper.from_array(v, k) for k, v in w.items()],
    )
    return _model(graph)


def conv_prelu_reference(image: npt.NDArray[np.float32], gain: npt.NDArray[np.float32],
                         seed: int = 7) -> dict[str, npt.NDArray[np.float32]]:
    """The same computation in plain NumPy (float64, then float32)."""
    w = conv_prelu_weights(seed)
    x = np.pad(image.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    _, _, h, width = image.shape
    out = np.zeros((1, 4, h, width))
    for dy in range(3):
        for dx in range(3):
            patch = x[:, :, dy:dy + h, dx:dx + width]  # (1,3,H,W)
            out += np.einsum("oc,nchw->nohw", w["w"][:, :, dy, dx], patch)
    out += w["b"].reshape(1, 4, 1, 1)
    act = np.where(out >= 0, out, out * w["slope"].reshape(1, 4, 1, 1))
    features = (act + w["shift"]) * gain
    scores = 1.0 / (1.0 + np.exp(-features))
    return {"features": features.astype(np.float32), "scores": scores.astype(np.float32)}


def add_reduce_model(shape: tuple[int, ...], constant: float) -> bytes:
    """x -> y = x + constant (an intermediate activation) -> total = ReduceSum(y)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["y"]),
         helper.make_node("ReduceSum", ["y"], ["total"], keepdims=0)],
        "add_reduce",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(np.array(constant, dtype=np.float32), "c")],
    )
    return _model(graph)


def write_model(directory: Path, name: str, data: bytes) -> tuple[Path, str]:
    path = directory / f"{name}.onnx"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def random_inputs(seed: int = 3, size: int = 8) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "image": rng.uniform(-1, 1, (1, 3, size, size)).astype(np.float32),
        "gain": rng.uniform(0.5, 1.5, (1, 4, 1, 1)).astype(np.float32),
    }
