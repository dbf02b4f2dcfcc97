"""The kiss's parts on their own: the frame graph against an OpenCV reference, the timeline's
promises (eye close time, easing, yaw limit, never still), the eyelid warp read back by our own
mesh at one fixed pose, the one-photo split, and the release of every buffer. The models, the
pipeline and the buffer owner are the effects tests' shared fixtures (conftest.py)."""

from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from appliance.effects.graphs.kiss import kiss_frame
from appliance.effects.kiss_parts import face_warp, timeline
from appliance.effects.kiss_parts import render as kiss_render
from appliance.effects.kiss_parts.compose import GRAPH, Person, make_kiss
from appliance.effects.kiss_parts.cutout import (
    CUT_HEIGHT,
    FACE_WIDTH,
    SPLIT_FADE,
    crop_transform,
    make_cutout,
)
from appliance.secure.buffers import REGISTRY
from appliance.vision import quality
from tests.helpers.images import astronaut_bgr, two_faces

H, W, h, w = 48, 64, 40, 30  # a small frame graph for the reference comparison


def reference_frame(backdrop: np.ndarray,
                    people: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The compositing by OpenCV: remap each premultiplied cut-out, then "over"."""
    under = backdrop[0].transpose(1, 2, 0).astype(np.float64)
    for rgba, grid in people:
        image = rgba[0].transpose(1, 2, 0)
        # GridSample's normalised coordinates (align_corners=0) back to pixel centres.
        map_x = ((grid[0, ..., 0] + 1) * w - 1) / 2
        map_y = ((grid[0, ..., 1] + 1) * h - 1) / 2
        sampled = cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32),
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        under = sampled[..., :3] + under * (1 - sampled[..., 3:4])
    return np.clip(np.round(under), 0, 255).astype(np.uint8)


def test_frame_graph_matches_opencv_and_is_deterministic() -> None:
    model = kiss_frame(H, W, h, w)
    assert model.SerializeToString() == kiss_frame(H, W, h, w).SerializeToString()
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    feeds = {"backdrop": rng.uniform(0, 255, (1, 3, H, W)).astype(np.float32)}
    people = []
    for prefix in ("back", "front"):
        rgba = rng.uniform(0, 1, (1, 4, h, w)).astype(np.float32)
        rgba[:, :3] *= 255 * rgba[:, 3:]
        angle = rng.uniform(-0.3, 0.3)
        ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
        gx = (np.cos(angle) * (xs - W / 2) - np.sin(angle) * (ys - H / 2)) / (W / 2)
        gy = (np.sin(angle) * (xs - W / 2) + np.cos(angle) * (ys - H / 2)) / (H / 2)
        grid = np.stack([gx * 1.2, gy * 1.2], -1)[None].astype(np.float32)
        feeds[f"{prefix}_rgba"], feeds[f"{prefix}_grid"] = rgba, grid
        people.append((rgba, grid))
    (frame,) = session.run(None, feeds)
    expected = reference_frame(feeds["backdrop"], people)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    # Bilinear weights differ in the last float bits; one level at most.
    assert np.abs(frame.astype(int) - expected).max() <= 1


def test_eyes_close_in_0_3_to_0_5_s_eased() -> None:
    assert 0.3 <= timeline.EYE_CLOSE_SECONDS <= 0.5
    for duration in (3.0, 4.0, 6.0):
        start = timeline.EYE_CLOSE_START * duration
        step = 1 / 240
        values = [timeline.pose_at(start + i * step, duration).eyes_closed
                  for i in range(int(0.6 / step))]
        assert values[0] == 0 and values[-1] == 1
        first_closed = next(i for i, v in enumerate(values) if v >= 1.0)
        assert first_closed * step == pytest.approx(timeline.EYE_CLOSE_SECONDS, abs=2 * step)
        speeds = np.diff(values)
        assert speeds[0] < 0.01 * speeds.max() and speeds[first_closed - 1] < 0.01 * speeds.max()


def test_motion_is_bounded_monotonic_and_never_still() -> None:
    assert timeline.MAX_YAW_DEG <= 20
    duration, fps = 4.0, 24
    poses = [timeline.pose_at(i / fps, duration) for i in range(timeline.frame_count(duration,
                                                                                     fps))]
    assert len(poses) == 96
    for field in ("approach", "yaw", "roll", "eyes_closed", "purse", "camera"):
        values = [getattr(p, field) for p in poses]
        assert all(b >= a for a, b in itertools.pairwise(values)), field
        assert values[0] == 0
    cameras = [p.camera for p in poses]
    assert all(b > a for a, b in itertools.pairwise(cameras))
    assert poses[-1].approach == 1 and poses[-1].eyes_closed == 1


@pytest.mark.needs_models
def test_the_eyelid_warp_reads_as_closed_to_our_mesh(owner: str, face_models: object) -> None:
    """Same frame, same pose, only the eyelids differ: our mesh sees the eyes close."""
    from appliance.vision.pipeline import FacePipeline

    pipeline = FacePipeline(face_models)  # type: ignore[arg-type]
    photo = astronaut_bgr()
    mirrored = np.ascontiguousarray(photo[:, ::-1])
    stages = []
    for image in (photo, mirrored):
        [face] = pipeline.analyse(image, owner, faces_needed=1)
        cut = make_cutout(image, pipeline.segment(image, owner), face.mesh, owner)
        stage = kiss_render.Stage(cut=cut, fields=face_warp.prepare(cut), direction=1.0,
                                  start=np.zeros(2))
        stage.allocate(owner)
        stages.append(stage)
    left, right = stages
    right.direction = -1.0
    graph = face_models.get(GRAPH)  # type: ignore[attr-defined]
    try:
        kiss_render.make_backdrop(graph.input_buffer("backdrop"))
        np.copyto(graph.input_buffer("back_rgba"), left.cut.rgba)
        np.copyto(graph.input_buffer("front_rgba"), right.cut.rgba)
        meet = kiss_render.place(left, right, 4.0)
        feeds = {spec.name: graph.input_buffer(spec.name) for spec in graph.inputs}
        pose = dataclasses.replace(timeline.pose_at(2.0, 4.0), approach=0.5)

        def eyes(closed: float) -> list[float]:
            moment = dataclasses.replace(pose, eyes_closed=closed)
            kiss_render.write_grid(left, moment, meet, graph.input_buffer("back_grid")[0])
            kiss_render.write_grid(right, moment, meet, graph.input_buffer("front_grid")[0])
            frame = np.ascontiguousarray(graph.run(feeds)["frame"])
            faces = sorted(pipeline.detect(frame, owner, mesh=True), key=lambda f: f.box[0])
            assert len(faces) == 2
            return [float(np.mean(quality.eye_openness(f.mesh))) for f in faces]

        opened, closed = eyes(0.0), eyes(1.0)
    finally:
        graph.zeroise()
        for stage in stages:
            stage.release()
            stage.cut.release()
    for before, after in zip(opened, closed, strict=True):
        assert after < 0.85 * before, (opened, closed)


def test_one_photo_two_people_each_keep_their_side(owner: str) -> None:
    """With both people in one photo, each cut-out fades out across the line between them."""
    photo = two_faces()  # two astronauts side by side; the line between them is x = 512
    mask = np.ones(photo.shape[:2], np.float32)
    mesh = np.zeros((468, 3), np.float32)
    # Only the points the cut-out uses (cheeks, eye corners, lips), of a face near the line.
    for index, (x, y) in {234: (180, 120), 454: (275, 120), 33: (200, 110), 133: (220, 110),
                          362: (235, 110), 263: (255, 110), 13: (228, 150),
                          14: (228, 155)}.items():
        mesh[index, :2] = (x + 200, y)
    for keep, sign in ((-1.0, 1), (1.0, -1)):
        cut = make_cutout(photo, mask, mesh, owner, split=(512.0, keep))
        affine = crop_transform(mesh)
        line = affine[0, 0] * 512 + affine[0, 2]
        half_fade = SPLIT_FADE * FACE_WIDTH / 2
        alpha = cut.rgba[0, 3, CUT_HEIGHT // 3: 2 * CUT_HEIGHT // 3]
        far = slice(int(line + half_fade) + 2, None) if sign > 0 else \
            slice(0, int(line - half_fade) - 1)
        near = slice(int(line - half_fade) - 40, int(line - half_fade) - 2) if sign > 0 else \
            slice(int(line + half_fade) + 2, int(line + half_fade) + 40)
        assert alpha[:, far].max() == 0, keep
        assert alpha[:, near].min() > 0.9, keep
        cut.release()


@pytest.mark.needs_models
def test_make_kiss_releases_all_but_its_outputs(owner: str, face_models: object) -> None:
    from appliance.media.video import Libx264Encoder, VideoSpec
    from appliance.vision.pipeline import FacePipeline

    pipeline = FacePipeline(face_models)  # type: ignore[arg-type]
    photo = astronaut_bgr()
    [face] = pipeline.analyse(photo, owner, faces_needed=1)
    person = Person(photo, pipeline.segment(photo, owner), face.mesh)
    before = {id(b) for b in REGISTRY.live(owner)}
    made = make_kiss(person, person, owner, duration=3.0, side="right", models=face_models,
                     encoder=Libx264Encoder(VideoSpec(1280, 720, 24), owner))
    assert made.frames == 72 and made.encoder == "libx264"
    left = [b for b in REGISTRY.live(owner) if id(b) not in before]
    assert sorted(b.label for b in left) == ["encoded-jpeg", "mp4-faststart"]
