"""What an effect's ``run`` receives: the job's photos, its parameters, the models and ``emit``.

Why one object: an effect is a pure function of its photos and parameters, and everything it
may touch that outlives a line of its code (its secure buffers, the models, the store, the
progress a screen shows) comes through ``EffectRun``. The same effect then runs unchanged for
the web service (outputs encrypted into the RAM store, each ready the moment it is emitted)
and for ``ephemera run`` (outputs written to a tmpfs folder): only the ``OutputSink`` differs.

``emit`` refuses what would break a promise of the booth rather than pass it on: data that is
not in a secure buffer of this job (a stray copy that release would miss), a name that is not a
plain file name, a media type the delivery cannot serve, or a file that carries metadata.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from appliance.effects.base import Photo
from appliance.media.metadata import metadata_found
from appliance.secure.buffers import REGISTRY

if TYPE_CHECKING:
    from appliance.models.backend import ModelProvider
    from appliance.vision.pipeline import FacePipeline

OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "video/mp4"})


class OutputSink(Protocol):
    """Where emitted bytes go: the job's encrypted store entry, or a file in a tmpfs folder."""

    def __call__(self, name: str, data: memoryview, media_type: str) -> None: ...


def segmenter(pipeline: FacePipeline, owner: str) -> Callable[[npt.NDArray[np.uint8]],
                                                              npt.NDArray[np.float32]]:
    """A photo's lazy person mask: the pipeline's segmentation into buffers of ``owner``."""
    return lambda bgr: pipeline.segment(bgr, owner)


@dataclass
class OutputRecord:
    """What is known about one emitted output: never its bytes."""

    name: str
    media_type: str
    nbytes: int  # the output's own size (what a download sends)
    seconds: float  # since the run started, when it was emitted


def _address_and_size(data: memoryview | npt.NDArray[Any]) -> tuple[int, int, memoryview]:
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            raise ValueError("emit needs a contiguous array")
        flat = data.reshape(-1).view(np.uint8)
    else:
        flat = np.frombuffer(data, dtype=np.uint8)
    return int(flat.ctypes.data), int(flat.nbytes), memoryview(flat.data)


def in_secure_buffer(address: int, nbytes: int, owner: str) -> bool:
    """Whether [address, address + nbytes) lies inside one live secure buffer of ``owner``."""
    return any(b.address <= address and address + nbytes <= b.address + b.nbytes
               for b in REGISTRY.live(owner))


class EffectJobRun:
    """The ``EffectRun`` of contract section 2, for one job (web) or one command (CLI)."""

    def __init__(self, job_id: str, photos: list[Photo], params: dict[str, Any],
                 models: ModelProvider, pipeline: FacePipeline, sink: OutputSink, *,
                 on_progress: Callable[[str, float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.photos = photos
        self.params = params
        self.models = models
        self.pipeline = pipeline
        self.outputs: dict[str, OutputRecord] = {}
        self.stages: dict[str, float] = {}  # seconds spent in each stage named by progress()
        self._sink = sink
        self._on_progress = on_progress
        self._clock = clock
        self._started = clock()
        self._stage: tuple[str, float] | None = None

    def progress(self, stage: str, fraction: float) -> None:
        """Name the stage now running and how far the whole effect is (0..1)."""
        self._close_stage()
        self._stage = (stage, self._clock())
        if self._on_progress is not None:
            self._on_progress(stage, min(1.0, max(0.0, float(fraction))))

    def _close_stage(self) -> None:
        if self._stage is not None:
            name, since = self._stage
            self.stages[name] = self.stages.get(name, 0.0) + self._clock() - since
            self._stage = None

    def finish(self) -> None:
        """End the last stage's timing (the runner calls this after ``run`` returns)."""
        self._close_stage()

    def emit(self, name: str, data: memoryview | npt.NDArray[Any], media_type: str) -> None:
        """Hand one finished output over: it is ready at once. The caller releases its buffer."""
        if not OUTPUT_NAME.match(name) or ".." in name:
            raise ValueError(f"output name {name!r} is not a plain file name")
        if name in self.outputs:
            raise ValueError(f"output {name!r} was emitted twice")
        if media_type not in MEDIA_TYPES:
            raise ValueError(f"media type {media_type!r} is not one the booth serves")
        address, nbytes, view = _address_and_size(data)
        if nbytes == 0:
            raise ValueError(f"output {name!r} is empty")
        if not in_secure_buffer(address, nbytes, self.job_id):
            raise ValueError(f"output {name!r} is not a view of a secure buffer of this job")
        found = metadata_found(view, media_type)
        if found:
            raise ValueError(f"output {name!r} carries metadata: {', '.join(found)}")
        try:
            self._sink(name, view, media_type)
        finally:
            view.release()
        self.outputs[name] = OutputRecord(name, media_type, nbytes,
                                          round(self._clock() - self._started, 4))
