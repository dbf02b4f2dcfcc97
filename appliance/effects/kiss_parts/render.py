"""Render the kiss: two cut-outs, eased motion, one graph run per frame, straight to the encoder.

Why frame by frame into the encoder: a 4-second 720p video is 96 frames of 2.7 MB; holding them
all would multiply the job's memory for nothing. Each frame is written by the graph into its
(secure) output buffer, handed to the encoder, and overwritten by the next; the poster is the
first frame of the hold, copied into its own secure buffer.

Geometry per person and frame (``Stage``): the cut-out's look-up map (identity plus turn, purse
and eyelids, ``face_warp``) is carried into the frame by the person's homography
(``cv2.warpPerspective`` of the coordinates: geometry, not the guest's pixels), which gives the
sampling grid the frame graph reads the cut-out through.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.kiss import FRAME_HEIGHT, FRAME_WIDTH
from appliance.effects.kiss_parts import face_warp, timeline
from appliance.effects.kiss_parts.cutout import FACE_WIDTH, Cutout
from appliance.media.video import H264Encoder
from appliance.models.backend import Backend
from appliance.secure.buffers import REGISTRY, SecureBuffer

FOCAL = 3.0 * FACE_WIDTH       # the 2-D turn's perspective: a portrait lens's mild keystone
START_X = (0.27, 0.73)         # anchors (between eyes and mouth) at the start, of the width
ANCHOR_Y = 0.47                # of the height
LIPS_GAP = 0.45 * FACE_WIDTH   # distance of the two mouth centres when the lips meet
OUTSIDE = -1.0e4               # grid value that GridSample's zero padding turns transparent


def make_backdrop(out: npt.NDArray[np.float32]) -> None:
    """A soft, warm studio backdrop (1, 3, H, W) BGR 0..255: glow behind the couple, gentle
    vignette, and a fixed fine grain so the encoder does not band the gradient."""
    _, _, height, width = out.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    nx, ny = (xs - width / 2) / (width / 2), (ys - height * 0.45) / (height / 2)
    glow = np.exp(-(nx ** 2 * 0.9 + ny ** 2 * 1.4))
    vertical = ys / height
    top, bottom, light = (np.array(c, np.float32) for c in
                          ((150, 128, 196), (120, 132, 206), (214, 222, 250)))
    grain = np.random.default_rng(7).normal(0.0, 1.2, (height, width)).astype(np.float32)
    for channel in range(3):
        base = top[channel] * (1 - vertical) + bottom[channel] * vertical
        out[0, channel] = base + (light[channel] - base) * glow * 0.85 + grain


@dataclass
class Stage:
    """One person's per-frame geometry state, all in secure buffers of the job."""

    cut: Cutout
    fields: face_warp.FaceFields
    direction: float              # +1 turns towards +x (the person on the left), -1 the other
    start: npt.NDArray[np.float64]  # anchor position at the start (frame pixels)
    end: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))
    identity: npt.NDArray[np.float32] = field(init=False)
    local: npt.NDArray[np.float32] = field(init=False)
    buffers: list[SecureBuffer] = field(default_factory=list)

    def allocate(self, owner: str) -> None:
        shape = (self.cut.height, self.cut.width, 2)
        buffer, self.identity = REGISTRY.array(shape, np.float32, owner=owner,
                                               label="kiss-identity")
        self.buffers.append(buffer)
        buffer, self.local = REGISTRY.array(shape, np.float32, owner=owner, label="kiss-map")
        self.buffers.append(buffer)
        face_warp.identity_map(self.identity)
        np.copyto(self.local, self.identity)

    def release(self) -> None:
        for buffer in self.buffers:
            buffer.release()


def _rotation(degrees: float) -> npt.NDArray[np.float64]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _yaw(degrees: float) -> npt.NDArray[np.float64]:
    """A plane turned about its vertical axis, seen through FOCAL: +x side recedes for > 0."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0.0, 0.0], [0.0, 1.0, 0.0], [s / FOCAL, 0.0, 1.0]])


def _translate(x: float, y: float) -> npt.NDArray[np.float64]:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _apply(matrix: npt.NDArray[np.float64], point: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    x, y, w = matrix @ np.array([point[0], point[1], 1.0])
    return np.array([x / w, y / w])


def _pose_matrix(stage: Stage, pose: timeline.Pose) -> npt.NDArray[np.float64]:
    """Cut-out pixels -> frame pixels before translation and camera (anchor at the origin)."""
    yaw = stage.direction * timeline.MAX_YAW_DEG * pose.yaw
    roll = timeline.MAX_ROLL_DEG * pose.roll
    ax, ay = stage.cut.face_centre
    return _rotation(roll) @ _yaw(yaw) @ _translate(-ax, -ay)


def _mouth(stage: Stage, pose: timeline.Pose) -> npt.NDArray[np.float64]:
    """Where the mouth centre lands relative to the anchor, turn shift included."""
    mesh = stage.cut.mesh
    mouth = mesh[list(face_warp.LIPS_CENTRE), :2].mean(axis=0).astype(np.float64)
    x0, y0, _x1, _y1 = stage.fields.box
    turn = stage.direction * math.sin(math.radians(timeline.MAX_YAW_DEG * pose.yaw))
    shift = stage.fields.turn[0, int(mouth[1]) - y0, int(mouth[0]) - x0] * turn
    return _apply(_pose_matrix(stage, pose), mouth + np.array([shift, 0.0]))


def place(left: Stage, right: Stage, duration: float) -> float:
    """Start and end anchors so the mouths meet in the middle; returns the meeting height."""
    for stage, x in ((left, START_X[0]), (right, START_X[1])):
        stage.start = np.array([x * FRAME_WIDTH, ANCHOR_Y * FRAME_HEIGHT])
    final = timeline.pose_at(duration, duration)
    mouth_left, mouth_right = _mouth(left, final), _mouth(right, final)
    meet_y = ANCHOR_Y * FRAME_HEIGHT + (mouth_left[1] + mouth_right[1]) / 2
    left.end = np.array([FRAME_WIDTH / 2 - LIPS_GAP / 2, meet_y]) - mouth_left
    right.end = np.array([FRAME_WIDTH / 2 + LIPS_GAP / 2, meet_y]) - mouth_right
    return float(meet_y)


def frame_matrix(stage: Stage, pose: timeline.Pose, meet_y: float) -> npt.NDArray[np.float64]:
    """Cut-out pixels -> frame pixels at this pose (camera push included)."""
    position = stage.start + (stage.end - stage.start) * pose.approach
    zoom = 1.0 + timeline.CAMERA_PUSH * pose.camera
    camera = (_translate(FRAME_WIDTH / 2, meet_y) @ np.diag([zoom, zoom, 1.0])
              @ _translate(-FRAME_WIDTH / 2, -meet_y))
    return camera @ _translate(*position) @ _pose_matrix(stage, pose)


def write_grid(stage: Stage, pose: timeline.Pose, meet_y: float,
               grid: npt.NDArray[np.float32]) -> None:
    """This frame's sampling grid (H, W, 2) for one person, into ``grid``."""
    turn = stage.direction * math.sin(math.radians(timeline.MAX_YAW_DEG * pose.yaw))
    face_warp.write_map(stage.fields, stage.identity, stage.local, turn, pose.purse,
                        pose.eyes_closed)
    cv2.warpPerspective(stage.local, frame_matrix(stage, pose, meet_y),
                        (FRAME_WIDTH, FRAME_HEIGHT), dst=grid, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=(OUTSIDE, OUTSIDE))
    # Cut-out pixels -> GridSample's [-1, 1] (align_corners=0), as the graph reads them.
    width, height = stage.cut.width, stage.cut.height
    to_unit = np.array([[2.0 / width, 0.0, 1.0 / width - 1.0],
                        [0.0, 2.0 / height, 1.0 / height - 1.0]])
    cv2.transform(grid, to_unit, dst=grid)


class FrameGraph(Backend, Protocol):
    """A backend whose bound input buffers can be written directly (both backends can)."""

    def input_buffer(self, name: str) -> npt.NDArray[Any]: ...


@dataclass
class RenderTimes:
    """Seconds spent per phase, for the benchmark."""

    frames: int = 0
    geometry: float = 0.0
    graph: float = 0.0
    encode: float = 0.0


def render(graph: FrameGraph, back: Stage, front: Stage, left: Stage, right: Stage,
           duration: float, fps: int, encoder: H264Encoder, owner: str,
           progress: Callable[[float], None] | None = None,
           ) -> tuple[SecureBuffer, npt.NDArray[np.uint8], RenderTimes]:
    """Every frame through ``graph`` into ``encoder``; returns the poster frame and timings.

    ``graph`` is the ``kiss_frame`` backend, its rgba and backdrop inputs already filled.
    """
    meet_y = place(left, right, duration)
    count = timeline.frame_count(duration, fps)
    poster_index = min(count - 1, round(count * 0.86))
    poster_buf, poster = REGISTRY.array((FRAME_HEIGHT, FRAME_WIDTH, 3), np.uint8, owner=owner,
                                        label="kiss-poster")
    times = RenderTimes()
    grids = {name: graph.input_buffer(f"{name}_grid") for name in ("back", "front")}
    feeds = {spec.name: graph.input_buffer(spec.name) for spec in graph.inputs}
    try:
        for index in range(count):
            pose = timeline.pose_at(index / fps, duration)
            started = time.perf_counter()
            write_grid(back, pose, meet_y, grids["back"][0])
            write_grid(front, pose, meet_y, grids["front"][0])
            geometry_done = time.perf_counter()
            frame = graph.run(feeds)["frame"]
            graph_done = time.perf_counter()
            encoder.add(frame)
            if index == poster_index:
                np.copyto(poster, frame)
            times.geometry += geometry_done - started
            times.graph += graph_done - geometry_done
            times.encode += time.perf_counter() - graph_done
            times.frames += 1
            if progress is not None:
                progress((index + 1) / count)
    except BaseException:
        poster_buf.release()
        raise
    return poster_buf, poster, times
