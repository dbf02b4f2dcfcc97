"""The headshot, rendered: per-photo work once, then each style, each emitted when ready.

Per photo (shared by every style): frame the face (crop, area-shrink, warp graph), the person
mask on the frame (segmentation model), the matte and foreground colours (matte graph), the
skin retouch on the face square (retouch graph), the shading map (normals from the mesh and the
mask). Per style: the style graph (relight, composite, grade) and the JPEG encoding. All of it
at the output's 1024 x 1280, never at the photo's size: the source is read once, by the crop.

Every image-sized intermediate lives in a secure buffer of the job (``owner``), released by the
job layer with the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.retouch import FACE_CROP
from appliance.effects.graphs.warp import PORTRAIT
from appliance.effects.headshot_parts.framing import (
    Frame,
    fill_crop,
    frame_from_mesh,
    inside,
    plan_crop,
)
from appliance.effects.headshot_parts.shading import shading_map
from appliance.effects.headshot_parts.skin import skin_weight
from appliance.effects.headshot_parts.styles import Style
from appliance.media.encode import encode_image
from appliance.models.backend import ModelProvider
from appliance.secure.buffers import REGISTRY
from appliance.vision.mesh import PRESENCE_THRESHOLD, FaceMesher, rect_from_mesh
from appliance.vision.segment import Segmenter

FRAME, MATTE, RETOUCH, STYLE = ("fx_frame_portrait", "fx_matte_portrait", "fx_retouch_face",
                                "fx_style_portrait")
MODELS = (FRAME, MATTE, RETOUCH, STYLE, "selfie_segmentation")
MASK_SIDE = 256
REFRAME_TOLERANCE = 0.01
JPEG_QUALITY = 92

Emit = Callable[[Style, memoryview], None]


@dataclass
class Prepared:
    """The per-photo work every style shares (views of secure buffers of the job)."""

    frame: Frame
    image: npt.NDArray[np.uint8]  # the framed photo, H x W x 3
    alpha: npt.NDArray[np.float32]
    foreground: npt.NDArray[np.uint8]  # retouched, background colour removed
    shading: npt.NDArray[np.float32]  # 4 x h x w
    points: npt.NDArray[np.float32]  # the mesh in output pixels
    relight: float  # the guest's share of each style's light (0..1)
    owner: str
    timings: dict[str, float] = field(default_factory=dict)


def _secure(shape: tuple[int, ...], dtype: Any, owner: str, label: str) -> npt.NDArray[Any]:
    _buffer, view = REGISTRY.array(shape, dtype, owner=owner, label=label)
    return view


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


def prepare(bgr: npt.NDArray[np.uint8], mesh: npt.NDArray[np.float32], models: ModelProvider,
            owner: str, *, retouch: float, relight: float) -> Prepared:
    """Everything up to the styles, for one photo and its face's mesh (source pixels)."""
    timings: dict[str, float] = {}
    height, width = PORTRAIT
    frame = frame_from_mesh(mesh)
    image = _secure((height, width, 3), np.uint8, owner, "headshot-frame")
    _frame_into(bgr, frame, models, owner, image, timings)
    with _timed(timings, "reframe"):
        # The mesh measured again on the framed face: a small source's face is only a few
        # dozen pixels wide, and our mesh on the enlarged face is the more precise. Framed
        # again when it moves the face by more than 1 % of the frame.
        better = _remesh(image, frame, mesh, models, owner)
        if better is not None:
            mesh = better
        refined = frame_from_mesh(mesh)
    if frame.differs(refined, REFRAME_TOLERANCE):
        frame = refined
        _frame_into(bgr, frame, models, owner, image, timings)
    with _timed(timings, "segment"):
        mask = _secure((MASK_SIDE, MASK_SIDE), np.float32, owner, "headshot-mask")
        Segmenter(models).low_res_mask(image, owner, mask)
    with _timed(timings, "matte"):
        out = models.get(MATTE).run({"image": image, "mask": mask})
        alpha = _secure((height, width), np.float32, owner, "headshot-alpha")
        foreground = _secure((height, width, 3), np.uint8, owner, "headshot-foreground")
        np.copyto(alpha, out["alpha"])
        np.copyto(foreground, out["foreground"])
    points = _secure((mesh.shape[0], 3), np.float32, owner, "headshot-mesh")
    np.copyto(points, frame.to_output(mesh))
    if retouch > 0:
        with _timed(timings, "retouch"):
            retouch_face(foreground, points, models, owner, retouch)
    with _timed(timings, "shading"):
        shading = _secure((4, height // 4, width // 4), np.float32, owner, "headshot-shading")
        np.copyto(shading, shading_map(points, alpha, 1.0))
    return Prepared(frame, image, alpha, foreground, shading, points, relight, owner, timings)


def _frame_into(bgr: npt.NDArray[np.uint8], frame: Frame, models: ModelProvider, owner: str,
                out: npt.NDArray[np.uint8], timings: dict[str, float]) -> None:
    """Crop (and area-shrink) the source, then the framing graph, into ``out``."""
    with _timed(timings, "crop"):
        crop = plan_crop(frame)
        box_shape = (crop.y1 - crop.y0, crop.x1 - crop.x0, 3)
        shrunk = None
        if crop.size != (box_shape[1], box_shape[0]):
            shrunk = _secure((crop.size[1], crop.size[0], 3), np.uint8, owner,
                             "headshot-crop-shrunk")
        box = None
        if shrunk is None or not inside(crop, bgr.shape[0], bgr.shape[1]):
            box = _secure(box_shape, np.uint8, owner, "headshot-crop")
        fill_crop(bgr, crop, box, shrunk)
    with _timed(timings, "frame"):
        source = shrunk if shrunk is not None else box
        assert source is not None
        framed = models.get(FRAME).run({"image": source, "roi": crop.roi})["framed"]
        np.copyto(out, framed)


def _remesh(image: npt.NDArray[np.uint8], frame: Frame, mesh: npt.NDArray[np.float32],
            models: ModelProvider, owner: str) -> npt.NDArray[np.float32] | None:
    """The face's mesh measured on the framed image, in source pixels (None: no face)."""
    result = FaceMesher(models).run(image, rect_from_mesh(frame.to_output(mesh)), owner)
    try:
        if result.presence < PRESENCE_THRESHOLD:
            return None
        return frame.points_to_source(result.points)
    finally:
        result.buffer.release()


def face_square(points: npt.NDArray[np.float32], height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the retouch square, centred on the face, inside the frame."""
    cx, cy = points[:, 0].mean(), points[:, 1].mean()
    x0 = int(np.clip(round(float(cx) - FACE_CROP / 2), 0, width - FACE_CROP))
    y0 = int(np.clip(round(float(cy) - FACE_CROP / 2), 0, height - FACE_CROP))
    return x0, y0


def retouch_face(image: npt.NDArray[np.uint8], points: npt.NDArray[np.float32],
                 models: ModelProvider, owner: str, strength: float) -> None:
    """Retouch the face square of ``image`` in place."""
    x0, y0 = face_square(points, image.shape[0], image.shape[1])
    local = points.copy()
    local[:, 0] -= x0
    local[:, 1] -= y0
    skin = _secure((FACE_CROP, FACE_CROP), np.float32, owner, "headshot-skin")
    np.copyto(skin, skin_weight(local, FACE_CROP, strength))
    square = image[y0:y0 + FACE_CROP, x0:x0 + FACE_CROP]
    out = models.get(RETOUCH).run({"image": square, "skin": skin})["retouched"]
    np.copyto(square, out)


def render_style(prepared: Prepared, style: Style, models: ModelProvider, owner: str,
                 emit: Emit) -> None:
    """One style: the style graph, JPEG encoding (no metadata), ``emit``."""
    with _timed(prepared.timings, f"style:{style.key}"):
        shading = _secure(prepared.shading.shape, np.float32, owner, "headshot-shading-style")
        np.copyto(shading, prepared.shading)
        shading[3] *= style.light.strength * prepared.relight  # this style's share of light
        styled = models.get(STYLE).run({
            "foreground": prepared.foreground, "alpha": prepared.alpha,
            "backdrop": style.backdrop_steps(), "shading": shading,
            "light": style.light.vector(), "lut": style.table()})["styled"]
    with _timed(prepared.timings, f"encode:{style.key}"):
        encoded, view = encode_image(styled, "jpeg", owner=owner, quality=JPEG_QUALITY)
    try:
        with _timed(prepared.timings, f"emit:{style.key}"):
            emit(style, view)
    finally:
        del view
        encoded.release()


def render(bgr: npt.NDArray[np.uint8], mesh: npt.NDArray[np.float32], models: ModelProvider,
           owner: str, styles: list[Style], emit: Emit, *, retouch: float = 0.7,
           relight: float = 1.0,
           progress: Callable[[str, float], None] | None = None) -> Prepared:
    """The whole headshot: ``emit`` is called once per style, in order, as each is ready."""
    if progress:
        progress("framing", 0.1)
    prepared = prepare(bgr, mesh, models, owner, retouch=retouch, relight=relight)
    for number, style in enumerate(styles):
        if progress:
            progress(f"style {style.title}", 0.4 + 0.6 * number / max(1, len(styles)))
        render_style(prepared, style, models, owner, emit)
    return prepared
