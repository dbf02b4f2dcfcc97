"""Finishing the baby portrait: shared skin tone, soft retouch, studio backdrop.

* Skin tone: each parent's warped picture is moved to a common tone in CIELAB (perceptually
  even, so a step in a and b reads the same on light and dark skin): mean and spread of L, a, b
  over the cheeks and forehead, matched to the resemblance-weighted mean of the parents' own
  statistics (Reinhard et al. 2001, colour transfer in a decorrelated perceptual space), so the
  two pictures blend without a patchy mix of two complexions.
* Retouch: frequency separation. The low layer is a guided filter of the picture by itself (He
  et al. 2013: box filters only, edge-preserving); the detail layer (picture minus low) is added
  back at ``DETAIL_KEPT`` on the skin, in full elsewhere: smooth baby skin that still has pores
  and fine light, not a flat colour.
* Backdrop: a soft, warm-grey studio sweep (a radial falloff, lighter behind the head), under the
  person's mask with a feathered edge; a cream blanket, shaded as a dome, over the shoulders.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
DETAIL_KEPT = 0.45
GUIDED_RADIUS = 9          # px at 1024: about a quarter of the baby's eye width
GUIDED_EPS = 0.03 ** 2     # intensity variance (0..1 scale) treated as "flat"
SPREAD_LIMITS = (0.7, 1.4)  # a parent's spread is matched at most this far
BACKDROP_CENTRE = np.asarray([0.93, 0.94, 0.95], np.float32)  # BGR, 0..1
BACKDROP_EDGE = np.asarray([0.70, 0.74, 0.78], np.float32)


def soft_blur(image: F32, sigma: float) -> F32:
    """Gaussian blur; a wide one is done at a reduced size (the result is smooth, so nothing
    is lost) to keep its cost independent of the width."""
    if sigma <= 3.0:
        return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), np.float32)
    factor = int(min(16, sigma // 2))
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)


def lab_stats(lab: F32, mask: npt.NDArray[np.bool_]) -> tuple[F32, F32]:
    pixels = lab[mask]
    return pixels.mean(axis=0).astype(np.float32), pixels.std(axis=0).astype(np.float32) + 1e-3


def match_tone(bgr: F32, target_mean: F32, target_std: F32, own: tuple[F32, F32]) -> None:
    """In place: the picture's Lab statistics (``own``, measured on its skin) moved to the
    target's."""
    mean, std = own
    lab: F32 = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab), np.float32)
    gain = np.clip(target_std / std, *SPREAD_LIMITS).astype(np.float32)
    lab -= mean
    lab *= gain
    lab += target_mean
    cv2.cvtColor(lab, cv2.COLOR_Lab2BGR, dst=bgr)
    np.clip(bgr, 0.0, 1.0, out=bgr)


def guided_self(image: F32, radius: int, eps: float) -> F32:
    """Guided filter of each channel guided by itself (He et al. 2013), in its fast form (He &
    Sun 2015): the linear coefficients fitted at half size, applied at full size."""
    h, w = image.shape[:2]
    small = np.asarray(cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                       np.float32)
    r = max(1, radius // 2)
    ksize = (2 * r + 1, 2 * r + 1)
    mean = np.asarray(cv2.boxFilter(small, -1, ksize), np.float32)
    sq = np.asarray(cv2.boxFilter(small * small, -1, ksize), np.float32)
    var = sq - mean * mean
    a = var / (var + np.float32(eps))
    b = mean - a * mean
    mean_a = np.asarray(cv2.resize(cv2.boxFilter(a, -1, ksize), (w, h),
                                   interpolation=cv2.INTER_LINEAR), np.float32)
    mean_b = np.asarray(cv2.resize(cv2.boxFilter(b, -1, ksize), (w, h),
                                   interpolation=cv2.INTER_LINEAR), np.float32)
    mean_a *= image
    mean_a += mean_b
    return np.asarray(mean_a, np.float32)


def retouch(bgr: F32, skin: F32) -> None:
    """In place: detail kept at ``DETAIL_KEPT`` where ``skin`` is 1, in full where it is 0."""
    low = guided_self(bgr, GUIDED_RADIUS, GUIDED_EPS)
    keep = 1.0 - (1.0 - DETAIL_KEPT) * skin
    bgr -= low
    bgr *= keep[..., None]
    bgr += low


def backdrop(size: int, centre: tuple[float, float], radius: float) -> F32:
    """A soft studio sweep: light behind the head, falling off smoothly to the corners.
    Computed at a quarter of the size and scaled up: it has no detail to lose."""
    small = max(1, size // 4)
    ys, xs = np.mgrid[0:small, 0:small].astype(np.float32)
    scale = small / size
    d = np.sqrt((xs + 0.5 - centre[0] * scale) ** 2 + (ys + 0.5 - centre[1] * scale) ** 2)
    t = np.clip(d / np.float32(radius * scale), 0.0, 1.0)[..., None] ** 1.5
    sweep = np.asarray(BACKDROP_CENTRE * (1.0 - t) + BACKDROP_EDGE * t, np.float32)
    return np.asarray(cv2.resize(sweep, (size, size), interpolation=cv2.INTER_LINEAR),
                      np.float32)


def smoothstep(t: F32) -> F32:
    t = np.clip(t, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), np.float32)


HAIR_SOFTNESS = 0.010   # blur of the hair, as a fraction of the portrait's side
HAIR_STRENGTH = 0.75    # how much of the parents' (softened) hair colour shows over the scalp
BLANKET = np.asarray([0.84, 0.90, 0.96], np.float32)  # BGR: a warm cream
BLUSH = np.asarray([0.55, 0.55, 0.95], np.float32)    # BGR: rose, mixed in softly
BLUSH_STRENGTH = 0.10
MOUTH_INSIDE = np.asarray([0.22, 0.20, 0.42], np.float32)  # BGR: a soft, dark rose


def soften_hair(bgr: F32, hair: F32, skin_lab_mean: F32, sigma: float) -> None:
    """In place: a baby's fine, soft hair. The parents' hair, blurred and lightened, laid
    at ``HAIR_STRENGTH`` over the skin tone, with a little of its own fine detail."""
    if bgr.size == 0:
        return
    skin = cv2.cvtColor(skin_lab_mean.reshape(1, 1, 3).astype(np.float32),
                        cv2.COLOR_Lab2BGR).reshape(3)
    soft = soft_blur(np.ascontiguousarray(bgr), sigma)
    detail = bgr - soft
    light = np.float32(0.12)
    soft = soft * (1 - light) + light
    treated = skin * (1 - HAIR_STRENGTH) + soft * HAIR_STRENGTH + 0.3 * detail
    bgr += (treated - bgr) * hair[..., None]


def baby_mouth(bgr: F32, mouth: F32) -> None:
    """In place: the inside of an open mouth becomes a soft, dark rose (no teeth)."""
    if not (mouth > 0.01).any():
        return
    bgr += (MOUTH_INSIDE - bgr) * (0.85 * mouth)[..., None]


def blush(bgr: F32, points: npt.NDArray[np.float64], scale: float) -> None:
    """In place: rosy cheeks, two soft spots at the cheeks' centres."""
    height, width = bgr.shape[:2]
    sigma = 0.22 * scale
    reach = int(3 * sigma) + 1
    for index in (50, 280):
        x, y = (float(v) for v in points[index, :2])
        x0, x1 = max(0, int(x) - reach), min(width, int(x) + reach + 1)
        y0, y1 = max(0, int(y) - reach), min(height, int(y) + reach + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        weight = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / np.float32(2 * sigma ** 2))
        patch = bgr[y0:y1, x0:x1]
        patch += (BLUSH - patch) * (BLUSH_STRENGTH * weight)[..., None]


def swaddle(bgr: F32, blanket: F32, person: F32, chin_y: float, scale: float) -> None:
    """In place: a soft cream blanket, rounded like wrapped shoulders (darker towards its rim
    and lower down); a faint shadow falls on the neck above it."""
    ys = np.arange(bgr.shape[0], dtype=np.float32)[:, None]
    shade = np.float32(1.0) - np.float32(0.10) * smoothstep((ys - chin_y) / (3.0 * scale))
    # Volume: the dome's rim turns away from the light.
    rim = soft_blur(blanket, 0.25 * scale)
    shade = shade * (np.float32(0.86) + np.float32(0.14) * rim)
    cloth = BLANKET * shade[..., None]
    shadow = soft_blur(blanket, 0.06 * scale)
    bgr *= (1.0 - 0.25 * np.clip(shadow - blanket, 0.0, 1.0) * person)[..., None]
    # Over the person the blanket's soft edge blends with the skin; over the backdrop its
    # colour reaches the edge.
    cover = blanket * person + np.minimum(1.0, 4.0 * blanket) * (1.0 - person)
    bgr += (cloth - bgr) * cover[..., None]


EYE_CLARITY = 0.8  # unsharp-mask amount on the eyes (sigma 2 px at 1024)


def clear_eyes(bgr: F32, eyes: F32) -> None:
    """In place: a portrait retoucher's "eye pop": an unsharp mask on the eyes only, so the
    lids and irises stay crisp after the morph's resampling."""
    blurred = np.asarray(cv2.GaussianBlur(bgr, (0, 0), 2.0), np.float32)
    detail = bgr - blurred
    bgr += detail * (EYE_CLARITY * eyes)[..., None]
    np.clip(bgr, 0.0, 1.0, out=bgr)
