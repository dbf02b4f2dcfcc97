"""The kiss video from two people: cut out, stage, render, encode; the one entry point.

``make_kiss`` takes each person as the photo, its person mask and the face's mesh, and returns
the faststart MP4 and the poster JPEG, each in a secure buffer of the job. Everything it makes
on the way (cut-outs, maps, frames) is released before it returns, whether it succeeds or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from appliance.effects.kiss_parts import face_warp
from appliance.effects.kiss_parts.cutout import make_cutout
from appliance.effects.kiss_parts.frame_graph import FRAME_HEIGHT, FRAME_WIDTH, kiss_frame
from appliance.effects.kiss_parts.render import (
    FrameGraph,
    RenderTimes,
    Stage,
    make_backdrop,
    render,
)
from appliance.media.encode import encode_image
from appliance.media.video import H264Encoder, VideoSpec, open_encoder
from appliance.models.onnxruntime_backend import OnnxRuntimeBackend, session_options
from appliance.secure.buffers import SecureBuffer

GRAPH = "kiss_frame"
SIDES = ("left", "right")


@dataclass
class Person:
    """One person as the effect found them."""

    bgr: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.float32]
    mesh: npt.NDArray[np.float32]
    split: tuple[float, float] | None = None  # one photo, two people: (line x, keep side)


@dataclass
class KissVideo:
    video: SecureBuffer
    video_bytes: memoryview
    poster: SecureBuffer
    poster_bytes: memoryview
    times: RenderTimes
    encoder: str
    frames: int


class InMemoryGraph(OnnxRuntimeBackend):
    """The frame graph in ONNX Runtime straight from its builder, with secure bound buffers.

    Used where the model set does not carry ``kiss_frame`` (it is generated, never
    downloaded); the same class, buffers and zeroising as every other model.
    """

    def __init__(self, model: onnx.ModelProto, name: str = GRAPH, threads: int = 0) -> None:
        self.model = name
        self.path = None  # type: ignore[assignment]
        self.owner = f"backend:{name}"
        self.options = session_options(threads)
        self._session = ort.InferenceSession(model.SerializeToString(),
                                             sess_options=self.options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = [self._spec(arg, "input") for arg in self._session.get_inputs()]
        self._outputs = [self._spec(arg, "output") for arg in self._session.get_outputs()]
        self._buffers = {}
        self._views = {}
        self._binding = None
        self._closed = False
        self._allocate_and_bind()


def frame_graph(models: Any = None) -> tuple[FrameGraph, bool]:
    """The ``kiss_frame`` backend (from the model set when it has one); True if we own it."""
    if models is not None:
        try:
            return models.get(GRAPH), False
        except Exception:
            pass
    return InMemoryGraph(kiss_frame()), True


def make_kiss(first: Person, second: Person, owner: str, *, duration: float = 4.0,
              side: str = "left", fps: int = 24, models: Any = None,
              encoder: H264Encoder | None = None,
              progress: Callable[[str, float], None] | None = None) -> KissVideo:
    """Render and encode the kiss; ``side`` is where ``first`` stands."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}")
    report = progress or (lambda _stage, _fraction: None)
    stages: list[Stage] = []
    graph, owned = frame_graph(models)
    spec = VideoSpec(FRAME_WIDTH, FRAME_HEIGHT, fps)
    try:
        report("cutting out", 0.0)
        for person in (first, second):
            cut = make_cutout(person.bgr, person.mask, person.mesh, owner, person.split)
            stage = Stage(cut=cut, fields=face_warp.prepare(cut), direction=1.0,
                          start=np.zeros(2))
            stage.allocate(owner)
            stages.append(stage)
        left, right = stages if side == "left" else stages[::-1]
        left.direction, right.direction = 1.0, -1.0
        back, front = left, right
        make_backdrop(graph.input_buffer("backdrop"))
        np.copyto(graph.input_buffer("back_rgba"), back.cut.rgba)
        np.copyto(graph.input_buffer("front_rgba"), front.cut.rgba)
        encoder = encoder or open_encoder(spec, owner)
        report("rendering", 0.0)
        try:
            poster_buf, poster, times = render(
                graph, back, front, left, right, duration, fps, encoder, owner,
                lambda fraction: report("rendering", fraction))
        except BaseException:
            encoder.abort()
            raise
        try:
            report("encoding", 0.0)
            started = time.perf_counter()
            video_buf, video = encoder.finish()
            times.encode += time.perf_counter() - started
            poster_jpeg_buf, poster_jpeg = encode_image(poster, owner=owner, quality=90)
        finally:
            poster_buf.release()
        return KissVideo(video_buf, video, poster_jpeg_buf, poster_jpeg, times, encoder.name,
                         times.frames)
    finally:
        for stage in stages:
            stage.release()
            stage.cut.release()
        graph.zeroise()
        if owned:
            graph.close()
