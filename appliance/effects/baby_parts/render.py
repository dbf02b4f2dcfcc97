"""From two parents' photos and meshes to the 1024 x 1024 baby portrait.

Order: shapes (canonical frame, weighted mean, child proportions) -> one triangle-id raster of
the baby's shape -> for each parent a working square (the region the warp reads, resized once
to the graph's fixed size, with its person mask as a fourth channel) and its sampling grid ->
the warp graph (both parents in one run) -> shared skin tone -> blend by resemblance -> soft
retouch -> studio backdrop. Both parents are warped onto the same shape before they are mixed,
so their eyes, nose and mouth fall on the same pixels: one pair of eyes, no ghost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.baby_parts import finish, shape
from appliance.effects.baby_parts.topology import Topology, topology
from appliance.effects.baby_parts.warp_maps import affines, source_map, triangle_ids
from appliance.effects.graphs.baby_warp import BATCH, CHANNELS, SIZE, WINDOW
from appliance.secure.buffers import REGISTRY
from appliance.vision.resample import shrink_into

OUTPUT = 1024
# The portrait's window the warp fills (WINDOW rows x columns, centred across, from the top
# margin down): every head of the tests lies well inside it; the backdrop and the blanket
# outside it need no parent's pixels.
WARP_TOP = 32
WARP_LEFT = (OUTPUT - WINDOW[1]) // 2
WARP_WIN = np.s_[WARP_TOP:WARP_TOP + WINDOW[0], WARP_LEFT:WARP_LEFT + WINDOW[1]]
EYE_WIDTH = 0.25 * OUTPUT   # outer eye corners' distance in the portrait
EYE_LINE = 0.47 * OUTPUT     # height of the eye line
# Warp: (images uint8 (2, S, S, 4), grid float32 (2, S, S, 2)) -> float32 (2, S, S, 4)
Warp = Callable[[Mapping[str, npt.NDArray[Any]]], Mapping[str, npt.NDArray[Any]]]
# Segment: BGR square -> person mask (any size; it is scaled to the square)
Segment = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Parent:
    bgr: npt.NDArray[np.uint8]
    mesh: npt.NDArray[np.float32]  # (468, 3) image pixels


@dataclass(frozen=True)
class Layout:
    """The baby's shape in portrait pixels and each parent's points in its own image."""

    baby: npt.NDArray[np.float64]                 # (N, 2) extended points, portrait pixels
    sources: tuple[npt.NDArray[np.float64], ...]  # (N, 2) per parent, image pixels
    topo: Topology


OPEN_EYE = (0.17, 0.28)  # eye aspect ratio: shut or hidden below, fully open above


def eye_open(parent: Parent) -> tuple[float, float]:
    """How open the photo shows each eye (right, left), 0 (shut or hidden) to 1."""
    from appliance.vision.quality import eye_openness

    lo, hi = OPEN_EYE
    out = []
    for value in eye_openness(parent.mesh):
        t = float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))
        out.append(t * t * (3.0 - 2.0 * t))
    return out[0], out[1]


def _open_eyes(mean: npt.NDArray[np.float64], aligned: list[npt.NDArray[np.float64]],
               parents: tuple[Parent, Parent], resemblance: float, topo: Topology) -> None:
    """In place: each eye's outline taken from the parents in proportion to how open each
    photo shows it, so a shut or hidden eye does not close the baby's eye."""
    opens = [eye_open(p) for p in parents]
    for side, contour in enumerate((shape.RIGHT_EYE, shape.LEFT_EYE)):
        a = (1.0 - resemblance) * (opens[0][side] + 1e-3)
        b = resemblance * (opens[1][side] + 1e-3)
        w = b / (a + b)
        index = list(contour)
        mean[index] = (1.0 - w) * aligned[0][index] + w * aligned[1][index]
        for hole, loop in enumerate(topo.holes):
            if contour[0] in loop:
                mean[468 + hole] = mean[list(loop)].mean(axis=0)


def layout(parents: tuple[Parent, Parent], resemblance: float,
           triangles: npt.NDArray[np.int32], *, child: bool = True) -> Layout:
    """Shapes and points. ``child=False`` keeps the parents' mean proportions: the control
    against which the tests measure what the child transform changed."""
    topo = topology(triangles)
    fronts = [shape.frontal(p.mesh) for p in parents]
    aligned = [topo.extend(shape.apply(shape.to_canonical(f), f)) for f in fronts]
    mean = shape.mean_shape(aligned[0], aligned[1], resemblance)
    _open_eyes(mean, aligned, parents, resemblance, topo)
    target = shape.child_transform(mean, mean[:468]) if child else mean
    baby = target * EYE_WIDTH + np.asarray([OUTPUT / 2.0, EYE_LINE])
    sources = tuple(topo.extend(np.asarray(p.mesh[:, :2], np.float64)) for p in parents)
    return Layout(baby, sources, topo)


VISIBLE_AREA = (0.2, 0.6)  # source/baby area ratio (after scale): hidden below, seen above


def visibility(baby: npt.NDArray[np.float64], source: npt.NDArray[np.float64],
               triangles: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    """Per triangle, how well a parent's photo shows it (0..1).

    Why: on a turned head the far side's triangles are squeezed or folded over in the photo
    (their signed area shrinks or flips); sampling them smears or shatters the texture. The
    blend then leans on the other parent there. Areas are compared after removing the overall
    scale (median ratio), so only the squeeze counts."""
    def signed(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        a, b, c = (points[triangles[:, k]] for k in range(3))
        return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1])
                      - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))

    dst = signed(baby)
    ratio = signed(source) / np.where(np.abs(dst) > 1e-9, dst, 1e-9)
    ratio /= max(float(np.median(ratio)), 1e-9)
    lo, hi = VISIBLE_AREA
    t = np.clip((ratio - lo) / (hi - lo), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), np.float32)


def eye_visibility(parent: Parent, baby: npt.NDArray[np.float64],
                   triangles: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    """Per triangle, 1 except around an eye the parent's photo shows shut or hidden.

    Why: the eyes-open gate passes a photo when one eye is open (a wink, or a camera held to
    one eye); a baby needs two open eyes, so around that eye the other parent is used."""
    out = np.ones(len(triangles), np.float32)
    centroids = baby[triangles].mean(axis=1)
    for contour, seen in zip((shape.RIGHT_EYE, shape.LEFT_EYE), eye_open(parent),
                             strict=True):
        eye = baby[list(contour)]
        centre = eye.mean(axis=0)
        radius = 0.5 * float(np.ptp(eye[:, 0]))
        near = np.linalg.norm(centroids - centre, axis=1) < 1.5 * radius
        out[near] = np.minimum(out[near], seen)
    return out


def _square(bgr: npt.NDArray[np.uint8], src_map: npt.NDArray[np.float32], owner: str,
            out: npt.NDArray[np.uint8]) -> tuple[float, float, float, float]:
    """Fill ``out`` (S, S, 3+) with the image region the map reads, resized alike along both
    axes; returns (x0, y0, sx, sy) so that square = (image - (x0, y0)) * (sx, sy)."""
    h, w = bgr.shape[:2]
    np.clip(src_map[..., 0], 0.0, float(w), out=src_map[..., 0])
    np.clip(src_map[..., 1], 0.0, float(h), out=src_map[..., 1])
    x0, y0 = (int(np.floor(src_map[..., k].min())) for k in range(2))
    x1, y1 = (int(np.ceil(src_map[..., k].max())) for k in range(2))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    side = max(x1 - x0, y1 - y0)
    scale = SIZE / side
    tw, th = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    tw, th = min(tw, SIZE), min(th, SIZE)
    out[...] = 0
    used_w, used_h = x1 - x0, y1 - y0
    scratch_buffer, scratch = REGISTRY.array((th, tw, 3), np.uint8, owner=owner,
                                             label="baby:square")
    try:
        if scale < 1.0:
            # The fast whole-factor INTER_AREA path (it drops at most factor - 1 edge pixels,
            # which the returned scale accounts for).
            shrink_into(bgr[y0:y1, x0:x1], scratch, owner)
            factor = min(used_w // tw, used_h // th)
            if factor >= 2:
                used_w, used_h = used_w // factor * factor, used_h // factor * factor
        else:
            cv2.resize(bgr[y0:y1, x0:x1], (tw, th), dst=scratch,
                       interpolation=cv2.INTER_LINEAR)
        out[:th, :tw, :3] = scratch
    finally:
        scratch_buffer.release()
    # Replicate the last row and column into the unused part (border reads stay in the image).
    if th < SIZE:
        out[th:, :, :3] = out[th - 1:th, :, :3]
    if tw < SIZE:
        out[:, tw:, :3] = out[:, tw - 1:tw, :3]
    return float(x0), float(y0), tw / used_w, th / used_h


def render(parents: tuple[Parent, Parent], resemblance: float,
           triangles: npt.NDArray[np.int32], warp: Warp, segment: Segment,
           owner: str, *, child: bool = True) -> npt.NDArray[np.uint8]:
    """The portrait (OUTPUT x OUTPUT x 3 uint8 BGR), in a secure buffer of ``owner``."""
    lay = layout(parents, resemblance, triangles, child=child)
    topo = lay.topo
    ids = triangle_ids(lay.baby, topo.triangles, OUTPUT, topo.face_triangles)
    buffers = []
    try:
        def secure(shape_: tuple[int, ...], dtype: Any, label: str) -> npt.NDArray[Any]:
            buffer, view = REGISTRY.array(shape_, dtype, owner=owner, label=f"baby:{label}")
            buffers.append(buffer)
            return view

        images = secure((BATCH, SIZE, SIZE, CHANNELS), np.uint8, "squares")
        grid = secure((BATCH, *WINDOW, 2), np.float32, "grid")
        seen = []
        for k, (parent, src) in enumerate(zip(parents, lay.sources, strict=True)):
            seen.append(visibility(lay.baby, src, topo.triangles)
                        * eye_visibility(parent, lay.baby, topo.triangles))
            source_map(ids[WARP_WIN], affines(lay.baby, src, topo.triangles), out=grid[k],
                       origin=(WARP_LEFT, WARP_TOP))
            x0, y0, sx, sy = _square(parent.bgr, grid[k], owner, images[k])
            # The person mask only needs to be soft (it is feathered below): the model's own
            # low-resolution mask, scaled up, is enough.
            low = segment(np.ascontiguousarray(images[k, :, :, :3]))
            mask = secure((SIZE, SIZE), np.float32, f"mask{k}")
            cv2.resize(low, (SIZE, SIZE), dst=mask, interpolation=cv2.INTER_LINEAR)
            np.multiply(mask, 255.0, out=mask)
            np.clip(mask, 0.0, 255.0, out=mask)
            images[k, :, :, 3] = mask
            # image pixels -> square pixels -> GridSample's [-1, 1] (align_corners=0)
            grid[k, ..., 0] -= x0
            grid[k, ..., 1] -= y0
            grid[k, ..., 0] *= np.float32(sx * 2.0 / SIZE)
            grid[k, ..., 1] *= np.float32(sy * 2.0 / SIZE)
            grid[k] -= np.float32(1.0)
        warped = warp({"images": images, "grid": grid})["warped"]
        weight = blend_weights(ids, seen, resemblance)
        return _compose(warped, lay, ids, weight, resemblance, owner, secure)
    finally:
        for buffer in buffers:
            buffer.release()


def blend_weights(ids: npt.NDArray[np.int32], seen: list[npt.NDArray[np.float32]],
                  resemblance: float) -> npt.NDArray[np.float32]:
    """Per pixel, parent B's share: ``resemblance`` where both photos show the spot, leaning
    to the photo that shows it where the other does not (smoothed across triangles)."""
    safe = np.where(ids >= 0, ids, 0)
    a = (1.0 - resemblance) * (seen[0][safe] + 1e-3)
    b = resemblance * (seen[1][safe] + 1e-3)
    weight = np.asarray(b / (a + b), np.float32)
    if 0.0 < resemblance < 1.0:
        weight = finish.soft_blur(weight, 0.04 * EYE_WIDTH)
    return np.asarray(weight, np.float32)


def eye_mask(lay: Layout) -> npt.NDArray[np.float32]:
    """Both eyes' outlines, grown by a few pixels and feathered."""
    mask = np.zeros((OUTPUT, OUTPUT), np.float32)
    for contour in (shape.RIGHT_EYE, shape.LEFT_EYE):
        hull = cv2.convexHull(np.round(lay.baby[list(contour)]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0, cv2.LINE_AA)
    grow = max(2, round(0.04 * EYE_WIDTH))
    grown = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return finish.soft_blur(np.asarray(grown, np.float32), 0.02 * EYE_WIDTH)


def _skin_mask(lay: Layout, ids: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Cheeks and forehead: face triangles away from eyes, brows, nose tip and mouth."""
    inside = (ids >= 0) & (ids < lay.topo.face_triangles)
    mask = np.zeros(ids.shape, np.uint8)
    mask[inside] = 255
    features = np.zeros_like(mask)
    pts = lay.baby[:468]
    for group in (shape.RIGHT_EYE + shape.BROWS[:5], shape.LEFT_EYE + shape.BROWS[5:],
                  (61, 291, 0, 17, 37, 267, 84, 314), (1, 2, 98, 327, 129, 358, 168)):
        hull = cv2.convexHull(np.round(pts[list(group)]).astype(np.int32))
        cv2.fillConvexPoly(features, hull, 255)
    grow = max(3, round(0.03 * EYE_WIDTH))
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    grown = cv2.dilate(features, kernel)
    shrunk = cv2.erode(mask, kernel)
    return np.asarray((shrunk > 0) & (grown == 0), np.bool_)


HEAD_WIDTH = 1.30    # widest hair allowed, over the mesh's cheek-to-cheek width
HEAD_TOP = 0.85      # highest hair allowed above the mesh's top point, in eye widths
BLANKET_DOME = (1.05, 1.75, 0.95)  # centre below the chin, half width, half height (eye widths)


@dataclass(frozen=True)
class HeadShape:
    """Masks of the portrait's parts, all float32 0..1 at OUTPUT x OUTPUT."""

    head: npt.NDArray[np.float32]     # what may show of the warped parents: head and neck
    scalp: npt.NDArray[np.float32]    # the hair: the head above and beside the face
    blanket: npt.NDArray[np.float32]  # the swaddle round the neck and shoulders
    mouth: npt.NDArray[np.float32]    # the inner mouth (no teeth on a baby)


def head_shape(lay: Layout, ids: npt.NDArray[np.int32],
               face: npt.NDArray[np.float32]) -> HeadShape:
    """Which parts of the portrait are hair, head, blanket and inner mouth.

    Why: the parents' full hairdos and clothes would read as an adult's. The hair keeps the
    parents' outline but inside a round, infant-sized skull; the shoulders disappear under a
    soft blanket dome, as in studio baby portraits."""
    pts = lay.baby
    cheeks = pts[[234, 454]]
    cx = float(cheeks[:, 0].mean())
    half_w = HEAD_WIDTH * 0.5 * float(abs(cheeks[1, 0] - cheeks[0, 0]))
    top = float(pts[10, 1]) - HEAD_TOP * EYE_WIDTH
    cy = float(cheeks[:, 1].mean())
    head: npt.NDArray[np.float32] = np.zeros((OUTPUT, OUTPUT), np.float32)
    cv2.ellipse(head, (round(cx), round(cy)), (round(half_w), round(cy - top)), 0.0, 0.0,
                360.0, 1.0, -1, cv2.LINE_AA)
    # Beside the face the hair ends softly from the cheeks down (an infant's hair is short).
    rows = np.arange(OUTPUT, dtype=np.float32)[:, None]
    head *= 1.0 - finish.smoothstep((rows - cy + 0.15 * EYE_WIDTH) / (0.35 * EYE_WIDTH))
    cv2.fillPoly(head, [np.round(pts[lay.topo.oval]).astype(np.int32)], 1.0, cv2.LINE_AA)
    chin = float(pts[152, 1])
    neck_w = 0.38 * half_w / HEAD_WIDTH
    cv2.rectangle(head, (round(cx - neck_w), round(float(pts[[172, 397], 1].mean()))),
                  (round(cx + neck_w), round(chin + 0.5 * EYE_WIDTH)), 1.0, -1)
    head = finish.soft_blur(head, 0.03 * EYE_WIDTH)
    # Only the warp's window holds the parents' pixels.
    inside = np.zeros_like(head)
    inside[WARP_WIN] = 1.0
    head *= finish.soft_blur(inside, 0.02 * EYE_WIDTH)
    scalp = np.clip(1.0 - 2.0 * finish.soft_blur(face, 0.03 * EYE_WIDTH), 0.0, 1.0)
    # The blanket's dome, drawn at a quarter of the size (it is feathered anyway).
    dome_y, dome_a, dome_b = (v * EYE_WIDTH for v in BLANKET_DOME)
    quarter = OUTPUT // 4
    ys, xs = (np.mgrid[0:quarter, 0:quarter].astype(np.float32) + 0.5) * 4.0
    d = ((xs - cx) / dome_a) ** 2 + ((ys - chin - dome_y) / dome_b) ** 2
    inside = np.where(ys > chin + dome_y, np.abs(xs - cx) < dome_a, d < 1.0)
    dome = cv2.resize(inside.astype(np.float32), (OUTPUT, OUTPUT),
                      interpolation=cv2.INTER_LINEAR)
    blanket = finish.soft_blur(np.asarray(dome, np.float32), 0.02 * EYE_WIDTH)
    # The inner lips are the hole whose loop holds landmark 13 (the upper inner lip); its fan
    # triangles follow the mesh's own 852.
    start = lay.topo.face_triangles - sum(len(h) for h in lay.topo.holes)
    mouth: npt.NDArray[np.float32] = np.zeros((OUTPUT, OUTPUT), np.float32)
    for loop in lay.topo.holes:
        if 13 in loop:
            mouth[(ids >= start) & (ids < start + len(loop))] = 1.0
        start += len(loop)
    mouth = finish.soft_blur(mouth, 0.008 * EYE_WIDTH)
    return HeadShape(head, scalp, blanket, mouth)


def _window(mask: npt.NDArray[np.float32], margin: int) -> tuple[slice, slice]:
    """Rows and columns where ``mask`` is not zero, grown by ``margin`` (empty if none)."""
    rows = np.flatnonzero(mask.max(axis=1) > 1e-3)
    cols = np.flatnonzero(mask.max(axis=0) > 1e-3)
    if not len(rows):
        return slice(0, 0), slice(0, 0)
    h, w = mask.shape
    return (slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + margin + 1)),
            slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + margin + 1)))


def _compose(warped: npt.NDArray[np.float32], lay: Layout, ids: npt.NDArray[np.int32],
             weight: npt.NDArray[np.float32], resemblance: float, owner: str,
             secure: Callable[[tuple[int, ...], Any, str], npt.NDArray[Any]]
             ) -> npt.NDArray[np.uint8]:
    """Tone, blend, retouch and finish inside the head's window (the only place the parents'
    pixels can show), then the backdrop and the blanket over the whole frame."""
    skin = _skin_mask(lay, ids)
    face: npt.NDArray[np.float32] = np.zeros((OUTPUT, OUTPUT), np.float32)
    face[(ids >= 0) & (ids < lay.topo.face_triangles)] = 1.0
    face = finish.soft_blur(face, max(3, round(0.05 * EYE_WIDTH)) | 1)
    parts = head_shape(lay, ids, face)
    win = _window(parts.head, 4)
    win = (slice(max(win[0].start, WARP_TOP), min(win[0].stop, WARP_TOP + WINDOW[0])),
           slice(max(win[1].start, WARP_LEFT), min(win[1].stop, WARP_LEFT + WINDOW[1])))
    y0, x0 = win[0].start, win[1].start
    # The same window in the warp's own pixels.
    wwin = (slice(y0 - WARP_TOP, win[0].stop - WARP_TOP),
            slice(x0 - WARP_LEFT, win[1].stop - WARP_LEFT))
    size = (win[0].stop - y0, win[1].stop - x0)
    pictures = []
    stats = []
    for k in range(2):
        pic = secure((*size, 3), np.float32, f"picture{k}")
        np.multiply(warped[k, wwin[0], wwin[1], :3], np.float32(1.0 / 255.0), out=pic)
        lab = np.asarray(cv2.cvtColor(pic, cv2.COLOR_BGR2Lab), np.float32)
        stats.append(finish.lab_stats(lab, skin[win]))
        del lab
        pictures.append(pic)
    w = np.float32(resemblance)
    target_mean = (1 - w) * stats[0][0] + w * stats[1][0]
    target_std = (1 - w) * stats[0][1] + w * stats[1][1]
    for pic, own in zip(pictures, stats, strict=True):
        finish.match_tone(pic, target_mean, target_std, own)
    share = weight[win]
    blend = pictures[0]
    blend *= (1.0 - share)[..., None]
    pictures[1] *= share[..., None]
    blend += pictures[1]
    # The retouch smooths the skin, not the eyes, brows and lips: they stay crisp. Each step
    # works on the window its mask covers (plus its filter's reach).
    skin_weight = finish.soft_blur(skin[win].astype(np.float32), 0.03 * EYE_WIDTH)
    sub = _window(skin_weight, 3 * finish.GUIDED_RADIUS)
    finish.retouch(blend[sub], skin_weight[sub])
    eyes = eye_mask(lay)[win]
    sub = _window(eyes, 8)
    finish.clear_eyes(blend[sub], eyes[sub])
    alpha = (1.0 - share) * warped[0, wwin[0], wwin[1], 3] + share * warped[1, wwin[0],
                                                                          wwin[1], 3]
    alpha *= np.float32(1.0 / 255.0)
    hair = parts.scalp[win] * alpha
    sigma = finish.HAIR_SOFTNESS * OUTPUT
    sub = _window(hair, round(3 * sigma))
    finish.soften_hair(blend[sub], hair[sub], target_mean, sigma)
    mouth = parts.mouth[win]
    sub = _window(mouth, 2)
    finish.baby_mouth(blend[sub], mouth[sub])
    finish.blush(blend, lay.baby - np.asarray([x0, y0]), EYE_WIDTH)
    alpha *= parts.head[win]
    top = lay.baby[10]
    frame = secure((OUTPUT, OUTPUT, 3), np.float32, "frame")
    frame[...] = finish.backdrop(OUTPUT, (OUTPUT / 2.0, float(top[1])), 0.95 * OUTPUT)
    inside = frame[win]
    blend -= inside
    blend *= alpha[..., None]
    inside += blend
    person = np.zeros((OUTPUT, OUTPUT), np.float32)
    person[win] = alpha
    rows = np.flatnonzero(parts.blanket.max(axis=1) > 1e-3)
    top_row = max(0, int(rows[0]) - round(0.3 * EYE_WIDTH)) if len(rows) else OUTPUT
    below = np.s_[top_row:, :]
    finish.swaddle(frame[below], parts.blanket[below], person[below],
                   float(lay.baby[152, 1]) - top_row, EYE_WIDTH)
    result_buffer, result = REGISTRY.array((OUTPUT, OUTPUT, 3), np.uint8, owner=owner,
                                           label="baby:result")
    # x 255, rounded and saturated to uint8 in one pass (the values are never negative).
    cv2.convertScaleAbs(frame, dst=result, alpha=255.0)
    del result_buffer
    return result
