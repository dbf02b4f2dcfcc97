"""The baby's shape: both meshes aligned, averaged by resemblance, given child proportions.

Frame ("canonical"): a similarity transform (rotation, uniform scale, shift; least squares over
the four eye corners 33, 133, 362, 263) puts the midpoint of the outer eye corners at the origin,
the line between them along +x and their distance at 1. y grows downwards, like image rows.

Child proportions, all relative to the outer eye-corner width (which the frame holds fixed):

* Farkas LG (1992), Anthropometry of the Head and Face, n = 1,594 North American subjects: at
  age 1 the outer intercanthal width is about 86 % of adult, the inner about 84 %, mandible
  width about 80 % and mandible height about 67 %. Relative to the outer eye corners:
  lower face (subnasale 2 to menton 152) height x 0.67 / 0.86 = ``LOWER_FACE`` 0.78;
  jaw width x 0.80 / 0.86 = ``JAW_WIDTH`` 0.93; inner eye corners x 0.84 / 0.86 = 0.977 of
  their distance (``INNER_CANTHI``), so the eye fissures get slightly longer.
* Ferrario VF et al. (1998), facial thirds from age 6 to adult: the lower third grows most
  (+17-23 %), the upper third least (+9-16 %). A child's forehead is therefore relatively tall:
  the forehead above the brows is stretched by ``FOREHEAD`` 1.10 (the difference of the two
  growth figures, about 10 %).
* Infant faces (same sources; standard paediatric descriptions): short, narrow nose and small
  mouth: nose length (nasion 168 to subnasale 2) and nose width x ``NOSE`` 0.85, mouth width x
  ``MOUTH`` 0.85; larger eyes relative to the face: eye opening height x ``EYE_OPENING`` 1.15
  (a design choice; no published infant figure for the lid aperture); rounder cheeks: the face
  outline widened by ``CHEEKS`` 1.04 at nose level, fading out at the eyes and the mouth.

The transform is a smooth field over the plane (vertical: piecewise linear and monotone in y;
horizontal: a width profile of y; features: local scalings with smooth fall-off), applied to the
mesh and to the rings around it alike, so it never folds a triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]

LOWER_FACE = 0.67 / 0.86
JAW_WIDTH = 0.80 / 0.86
INNER_CANTHI = 0.84 / 0.86
FOREHEAD = 1.10
NOSE = 0.85
MOUTH = 0.85
EYE_OPENING = 1.15
CHEEKS = 1.04

# Landmarks (MediaPipe's 468-point topology).
RIGHT_OUTER, RIGHT_INNER, LEFT_INNER, LEFT_OUTER = 33, 133, 362, 263
EYE_CORNERS = (RIGHT_OUTER, RIGHT_INNER, LEFT_INNER, LEFT_OUTER)
NASION, NOSE_TIP, SUBNASALE, MENTON = 168, 1, 2, 152
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
ALA_RIGHT, ALA_LEFT = 129, 358
BROWS = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
RIGHT_LIDS = ((159, 145), (158, 153), (160, 144))
LEFT_LIDS = ((386, 374), (385, 380), (387, 373))
# Where each canonical point goes: eye-corner midpoint and the outer eye corners' distance.
CANONICAL_TARGET = np.asarray([[-0.5, 0.0], [-0.5 + 0.32, 0.0], [0.5 - 0.32, 0.0], [0.5, 0.0]])


def similarity(src: Points, dst: Points) -> npt.NDArray[np.float64]:
    """2x3 least-squares similarity (Umeyama 1991, no reflection) mapping src onto dst."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    # Complex-number form: dst = a * src with a = sum(conj(s) d) / sum(|s|^2).
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    a = np.sum(np.conj(sc) * dc) / np.sum(np.abs(sc) ** 2)
    rot = np.asarray([[a.real, -a.imag], [a.imag, a.real]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def apply(matrix: npt.NDArray[np.float64], points: Points) -> Points:
    return np.asarray(points[:, :2] @ matrix[:, :2].T + matrix[:, 2], np.float64)


def invert(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    inv = np.linalg.inv(matrix[:, :2])
    return np.hstack([inv, (-inv @ matrix[:, 2])[:, None]])


def to_canonical(mesh: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """The 2x3 similarity from image pixels to the canonical frame, fitted on the eye corners.

    The outer corners carry the scale and angle exactly (their target distance is 1 and the inner
    targets are placed by their own mean), so measurements stay in outer eye-corner units."""
    pts = np.asarray(mesh[:, :2], np.float64)
    outer = similarity(pts[[RIGHT_OUTER, LEFT_OUTER]], CANONICAL_TARGET[[0, 3]])
    inner = apply(outer, pts[[RIGHT_INNER, LEFT_INNER]])
    target = CANONICAL_TARGET.copy()
    target[1:3] = inner  # the inner corners vote only through their own positions
    return similarity(pts[list(EYE_CORNERS)], target)


def frontal(mesh: npt.NDArray[np.floating]) -> Points:
    """(468, 2): the 3-D mesh turned to face the camera (yaw, then pitch; about its centroid),
    seen straight on. Why: averaging a turned face's 2-D outline would give the baby a squeezed
    far cheek; the warp still reads each parent's photo where the points really are."""
    pts = np.asarray(mesh[:, :3], np.float64)
    pts = pts - pts.mean(axis=0)
    across = pts[454] - pts[234]           # cheek to cheek
    yaw = np.arctan2(across[2], across[0])
    c, s = np.cos(yaw), np.sin(yaw)
    pts = pts @ np.asarray([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    down = pts[152] - pts[10]              # forehead to chin
    pitch = np.arctan2(down[2], down[1])
    c, s = np.cos(pitch), np.sin(pitch)
    pts = pts @ np.asarray([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return np.asarray(pts[:, :2], np.float64)


def mean_shape(a: Points, b: Points, resemblance: float) -> Points:
    """Weighted mean in the canonical frame: 0 gives A, 1 gives B."""
    return (1.0 - resemblance) * a + resemblance * b


def _smoothstep(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _local_scale(points: Points, centre: npt.NDArray[np.float64], radii: npt.NDArray[np.float64],
                 sx: float, sy: float, reach: float = 0.7) -> Points:
    """Scale by (sx, sy) about centre inside the ellipse ``radii``, fading to none at
    (1 + reach) x radii (smoothstep), so neighbouring points follow without folds."""
    rel = points - centre
    d = np.sqrt(((rel / radii) ** 2).sum(axis=1))
    w = 1.0 - _smoothstep((d - 1.0) / reach)
    out = points.copy()
    out[:, 0] = centre[0] + rel[:, 0] * (1.0 + (sx - 1.0) * w)
    out[:, 1] = centre[1] + rel[:, 1] * (1.0 + (sy - 1.0) * w)
    return out


@dataclass(frozen=True)
class Levels:
    """Reference positions on the mean mesh (canonical units) that the transform is built on."""

    brow: float
    eye_bottom: float
    nasion: float
    subnasale: float
    mouth: float
    midline: float

    @staticmethod
    def of(mesh: Points) -> Levels:
        eyes = mesh[list(RIGHT_EYE + LEFT_EYE)]
        return Levels(brow=float(mesh[list(BROWS), 1].mean()),
                      eye_bottom=float(eyes[:, 1].max()),
                      nasion=float(mesh[NASION, 1]), subnasale=float(mesh[SUBNASALE, 1]),
                      mouth=float(mesh[[MOUTH_RIGHT, MOUTH_LEFT], 1].mean()),
                      midline=float(mesh[[NOSE_TIP, SUBNASALE, MENTON], 0].mean()))


def _vertical(y: npt.NDArray[np.float64], lv: Levels) -> npt.NDArray[np.float64]:
    """Monotone piecewise-linear map of y: forehead taller, nose and lower face shorter."""
    # Nose segment factor chosen so nasion->subnasale becomes NOSE of itself although the part
    # above the lower lids (inside the eyes' band) is left alone.
    nose_len = lv.subnasale - lv.nasion
    band = max(lv.eye_bottom - lv.nasion, 0.0)
    k_nose = (NOSE * nose_len - band) / max(lv.subnasale - lv.eye_bottom, 1e-6)
    knots_in = np.asarray([lv.brow, lv.eye_bottom, lv.subnasale])
    out = y.copy()
    above = y < lv.brow
    out[above] = lv.brow + FOREHEAD * (y[above] - lv.brow)
    mid = (y >= lv.eye_bottom) & (y < lv.subnasale)
    out[mid] = lv.eye_bottom + k_nose * (y[mid] - lv.eye_bottom)
    sn_new = lv.eye_bottom + k_nose * (lv.subnasale - lv.eye_bottom)
    below = y >= lv.subnasale
    out[below] = sn_new + LOWER_FACE * (y[below] - lv.subnasale)
    del knots_in
    return out


def _width_profile(y: npt.NDArray[np.float64], lv: Levels) -> npt.NDArray[np.float64]:
    """Horizontal scale as a function of (original) y: cheeks rounder, jaw narrower."""
    cheek_peak = 0.5 * (lv.eye_bottom + lv.subnasale)
    half = max(lv.subnasale - lv.eye_bottom, 1e-6)
    bump = 1.0 - _smoothstep(np.abs(y - cheek_peak) / half)
    jaw = _smoothstep((y - lv.subnasale) / max(lv.mouth - lv.subnasale, 1e-6))
    return 1.0 + (CHEEKS - 1.0) * bump + (JAW_WIDTH - 1.0) * jaw


def _global(points: Points, lv: Levels) -> Points:
    """Whole-face proportions, as functions of the adult position."""
    out = points.copy()
    out[:, 0] = lv.midline + (points[:, 0] - lv.midline) * _width_profile(points[:, 1], lv)
    out[:, 1] = _vertical(points[:, 1], lv)
    return out


@dataclass(frozen=True)
class _Feature:
    """One local scaling: where (fitted on the globally transformed mean mesh) and which
    measure of ``measures`` it must bring to which ratio of the adult mean."""

    centre: npt.NDArray[np.float64]
    radii: npt.NDArray[np.float64]
    axis: int
    measure: str
    reach: float


def _features(mesh: Points) -> list[_Feature]:
    feats = []
    for eye in (RIGHT_EYE, LEFT_EYE):
        pts = mesh[list(eye)]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        feats.append(_Feature(0.5 * (lo + hi), np.asarray([0.62 * (hi[0] - lo[0]),
                                                           0.9 * (hi[1] - lo[1])]),
                              1, "eye_opening", 0.8))
    for inner, outer in ((RIGHT_INNER, RIGHT_OUTER), (LEFT_INNER, LEFT_OUTER)):
        width = abs(mesh[outer, 0] - mesh[inner, 0])
        feats.append(_Feature(mesh[outer, :2].copy(), np.asarray([1.05 * width, 0.15 * width]),
                              0, "inner_canthi", 0.5))
    nasion, subnasale = mesh[NASION, 1], mesh[SUBNASALE, 1]
    half = 0.5 * abs(mesh[ALA_LEFT, 0] - mesh[ALA_RIGHT, 0])
    feats.append(_Feature(np.asarray([mesh[SUBNASALE, 0], subnasale - 0.25 * (subnasale - nasion)]),
                          np.asarray([1.1 * half, 0.3 * (subnasale - nasion)]), 0, "nose_width",
                          0.8))
    mouth_half = 0.5 * abs(mesh[MOUTH_LEFT, 0] - mesh[MOUTH_RIGHT, 0])
    feats.append(_Feature(mesh[[MOUTH_RIGHT, MOUTH_LEFT], :2].mean(axis=0),
                          np.asarray([1.05 * mouth_half, 0.45 * mouth_half]), 0, "mouth_width",
                          0.8))
    return feats


def _apply_features(points: Points, feats: list[_Feature], factors: list[float]) -> Points:
    for feat, factor in zip(feats, factors, strict=True):
        sx, sy = (factor, 1.0) if feat.axis == 0 else (1.0, factor)
        points = _local_scale(points, feat.centre, feat.radii, sx, sy, reach=feat.reach)
    return points


def child_transform(points: Points, reference: Points) -> Points:
    """Child proportions for ``points`` (the extended mean mesh), measured on ``reference``
    (its first 468 points). Returns new points in the same canonical frame.

    The whole-face field goes first; then the local scalings of eyes, nose and mouth, whose
    factors are refined (a few fixed-point steps) until each measure of ``measures`` ends at its
    documented ratio of the adult mean, although the fields overlap a little.
    """
    lv = Levels.of(reference)
    base = _global(reference, lv)
    feats = _features(base)
    adult = measures(reference)
    factors = [1.0] * len(feats)
    for _ in range(8):
        got = measures(_apply_features(base, feats, factors))
        # Widening an eye about its outer corner brings the inner corners together: that
        # measure falls as its factor grows, hence the inverted, damped step.
        factors = [f * (EXPECTED_RATIOS[feat.measure] * adult[feat.measure] / got[feat.measure])
                   ** (-0.6 if feat.measure == "inner_canthi" else 1.0)
                   for f, feat in zip(factors, feats, strict=True)]
    return _apply_features(_global(points, lv), feats, factors)


def measures(mesh: Points) -> dict[str, float]:
    """Proportions the transform changes, and some it keeps, in outer eye-corner units
    (``mesh`` already in the canonical frame)."""
    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))

    def opening(lids: tuple[tuple[int, int], ...]) -> float:
        return float(np.mean([dist(a, b) for a, b in lids]))

    return {
        "lower_face": float(mesh[MENTON, 1] - mesh[SUBNASALE, 1]),
        "nose_length": float(mesh[SUBNASALE, 1] - mesh[NASION, 1]),
        "nose_width": dist(ALA_RIGHT, ALA_LEFT),
        "mouth_width": dist(MOUTH_RIGHT, MOUTH_LEFT),
        "eye_opening": 0.5 * (opening(RIGHT_LIDS) + opening(LEFT_LIDS)),
        "inner_canthi": dist(RIGHT_INNER, LEFT_INNER),
        "brow_height": float(-mesh[list(BROWS), 1].mean()),
    }


EXPECTED_RATIOS = {"lower_face": LOWER_FACE, "nose_length": NOSE, "nose_width": NOSE,
                   "mouth_width": MOUTH, "eye_opening": EYE_OPENING,
                   "inner_canthi": INNER_CANTHI, "brow_height": 1.0}
