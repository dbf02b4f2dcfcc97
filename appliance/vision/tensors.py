"""Model-input plumbing shared by detection, mesh and segmentation.

Why one module: every model takes a square RGB image as float32 with its own value range, and
the only thing that differs between runtimes is the memory layout (the converted ONNX models are
NCHW). Converting BGR uint8 pixels into that tensor happens here, in one small adapter, writing
straight into the backend's own input buffer when it exposes one, otherwise into a secure buffer
of the job, so no unwiped copy of a guest's pixels is ever left behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.models.backend import Backend, ModelProvider, TensorSpec
from appliance.secure.buffers import REGISTRY, SecureBuffer


@dataclass(frozen=True)
class Normalisation:
    """value = pixel * scale + offset, pixel in [0, 255]."""

    scale: float
    offset: float


MINUS_ONE_TO_ONE = Normalisation(scale=2.0 / 255.0, offset=-1.0)  # BlazeFace detectors
ZERO_TO_ONE = Normalisation(scale=1.0 / 255.0, offset=0.0)  # face mesh, selfie segmentation


__all__ = ["MINUS_ONE_TO_ONE", "ZERO_TO_ONE", "ModelInput", "ModelProvider", "Normalisation",
           "input_size", "is_nchw", "output_by_last_dim", "output_by_size"]


def is_nchw(spec: TensorSpec) -> bool:
    """NCHW when the channel axis (3) comes right after the batch axis."""
    return len(spec.shape) == 4 and spec.shape[1] == 3 and spec.shape[3] != 3


def input_size(spec: TensorSpec) -> tuple[int, int]:
    """(height, width) of an image input in either layout."""
    if is_nchw(spec):
        return int(spec.shape[2]), int(spec.shape[3])
    return int(spec.shape[1]), int(spec.shape[2])


class ModelInput:
    """The float32 array to fill for one model input, and how to give it back.

    Uses the backend's own input buffer when it exposes one (``input_buffer(name)``): then the
    normalised pixels are written exactly once. Otherwise a secure buffer owned by the job.
    """

    def __init__(self, backend: Backend, owner: str) -> None:
        self.spec = backend.inputs[0]
        self._buffer: SecureBuffer | None = None
        getter = getattr(backend, "input_buffer", None)
        direct = getter(self.spec.name) if callable(getter) else None
        if isinstance(direct, np.ndarray) and direct.dtype == np.float32 \
                and tuple(direct.shape) == tuple(self.spec.shape):
            self.array: npt.NDArray[np.float32] = direct
        else:
            self._buffer, self.array = REGISTRY.array(
                tuple(self.spec.shape), np.float32, owner=owner, label=f"{backend.model}-input")

    def fill(self, bgr: npt.NDArray[np.uint8], norm: Normalisation) -> None:
        """Write BGR uint8 pixels (H x W x 3, the model's size) as normalised RGB floats."""
        nchw = is_nchw(self.spec)
        for channel in range(3):
            plane = self.array[0, channel] if nchw else self.array[0, :, :, channel]
            np.multiply(bgr[:, :, 2 - channel], np.float32(norm.scale), out=plane,
                        casting="unsafe")
            plane += np.float32(norm.offset)

    def feeds(self) -> Mapping[str, npt.NDArray[Any]]:
        return {self.spec.name: self.array}

    def release(self) -> None:
        """Wipe our copy (the backend's own buffer is wiped by its ``zeroise``)."""
        if self._buffer is not None:
            self._buffer.release()
            self._buffer = None


def output_by_size(outputs: Mapping[str, npt.NDArray[Any]],
                   size: int) -> npt.NDArray[Any]:
    """The output with ``size`` elements: the converter's output names are not a contract."""
    for array in outputs.values():
        if int(array.size) == size:
            return array
    sizes = ", ".join(str(a.size) for a in outputs.values())
    raise ValueError(f"no model output with {size} values (outputs have {sizes})")


def output_by_last_dim(outputs: Mapping[str, npt.NDArray[Any]], last: int,
                       count: int) -> npt.NDArray[Any]:
    """The output holding ``count`` rows of ``last`` values (e.g. 896 x 16 boxes)."""
    return output_by_size(outputs, last * count).reshape(count, last)
