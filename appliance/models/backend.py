"""The one inference interface: every model, on every machine, is run through it.

Why one interface: the vision and effects code must not care whether it runs on a Jetson
(TensorRT engines) or a laptop (ONNX Runtime on CPU), and the privacy guarantees (caller-owned
buffers, ``zeroise()`` after each job) must hold identically on both.

Contract for implementations:

* Input and output buffers are allocated once per model, from secure memory where the backend
  can (host) and device memory it owns (GPU); ``run()`` copies the feeds into the input buffers,
  runs, and returns *views of the output buffers*. A view is valid until the next ``run()`` or
  ``zeroise()``; copy what must outlive that into a secure buffer of the job.
* ``zeroise()`` overwrites inputs, outputs and the activation (scratch) memory. The job layer
  calls it when a job is released; it must leave the backend usable.
* Loading checks the model file's sha256 against the manifest and refuses a mismatch
  (``ModelIntegrityError``): a tampered model is an attack on the guest, not a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


class BackendError(RuntimeError):
    """A backend cannot load or run a model; the message says which and why."""


class ModelIntegrityError(BackendError):
    """A model file's hash does not match the manifest: refuse to load it."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


@runtime_checkable
class Backend(Protocol):
    """A loaded model, ready to run, that can wipe everything it touched."""

    name: str  # e.g. "onnxruntime" or "tensorrt"
    model: str  # the manifest's model name

    @property
    def inputs(self) -> list[TensorSpec]: ...

    @property
    def outputs(self) -> list[TensorSpec]: ...

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Run once; returns views of backend-owned output buffers (see module docstring)."""
        ...

    def zeroise(self) -> None:
        """Overwrite inputs, outputs and activation memory. The backend stays usable."""
        ...

    def close(self) -> None:
        """Zeroise and free everything; the backend is unusable afterwards."""
        ...


class ModelProvider(Protocol):
    """The booth's model set as its users see it (``appliance.models.loader.ModelSet``).

    Why one Protocol: the vision code asks for a model by its manifest name, the job layer wipes
    them all after every job, and the effects do both; one view keeps them from drifting apart.
    """

    def get(self, name: str) -> Backend:
        """The loaded model ``name`` (opened on first use), on the backend chosen for it."""
        ...

    def zeroise_all(self) -> None:
        """Overwrite every opened model's inputs, outputs and activation memory."""
        ...
