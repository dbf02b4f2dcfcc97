"""Person segmentation at full image resolution, with edges that follow the photo.

Why a guided filter: the selfie segmentation model sees the photo at 256 x 256, so a plainly
upsampled mask is a soft blob that cuts through hair and shoulders. The guided filter (He, Sun
and Tang, 2013) fits the mask locally as a linear function of the image's brightness, so the
mask's edges snap to the photo's edges. It is the "fast" variant: the linear coefficients are
fitted at a reduced resolution (``GUIDE_SIDE``) and only applied at full size, which keeps a
12-megapixel photo to a few full-size passes. Box filters are OpenCV's (cv2.ximgproc is not in
the headless wheel). Every image-sized array lives in a secure buffer of the job.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY, SecureBuffer
from appliance.vision.tensors import (
    ZERO_TO_ONE,
    ModelInput,
    ModelProvider,
    input_size,
    output_by_size,
)

MODEL = "selfie_segmentation"
GUIDE_SIDE = 512  # long side at which the guided filter's coefficients are fitted
RADIUS_FRACTION = 1.0 / 64  # filter radius relative to the long side: hair-strand scale
EPSILON = 1e-3  # regularisation on [0, 1] brightness: lower follows edges more closely


class Segmenter:
    """Runs the selfie segmentation model and refines its mask with a guided filter."""

    def __init__(self, models: ModelProvider) -> None:
        self.models = models

    def low_res_mask(self, bgr: npt.NDArray[np.uint8], owner: str,
                     out: npt.NDArray[np.float32]) -> None:
        """The model's own mask (its input size), written into ``out``.

        As MediaPipe's selfie_segmentation graph, the whole image is resized to the square
        input (not letterboxed), so the mask maps straight back onto the image.
        """
        backend = self.models.get(MODEL)
        feed = ModelInput(backend, owner)
        h, w = input_size(feed.spec)
        square_buf, square = REGISTRY.array((h, w, 3), np.uint8, owner=owner,
                                            label="segment-input")
        try:
            cv2.resize(bgr, (w, h), dst=square, interpolation=cv2.INTER_AREA)
            feed.fill(square, ZERO_TO_ONE)
            outputs = backend.run(feed.feeds())
            np.copyto(out, output_by_size(outputs, h * w).reshape(h, w))
        finally:
            square_buf.release()
            feed.release()

    def segment(self, bgr: npt.NDArray[np.uint8], owner: str) -> tuple[
            SecureBuffer, npt.NDArray[np.float32]]:
        """Person mask, float32 H x W in [0, 1], in a secure buffer of ``owner``."""
        spec = self.models.get(MODEL).inputs[0]
        mh, mw = input_size(spec)
        low_buf, low = REGISTRY.array((mh, mw), np.float32, owner=owner, label="segment-mask")
        try:
            self.low_res_mask(bgr, owner, low)
            return guided_upsample(bgr, low, owner)
        finally:
            low_buf.release()


def guided_upsample(bgr: npt.NDArray[np.uint8], mask: npt.NDArray[np.float32],
                    owner: str) -> tuple[SecureBuffer, npt.NDArray[np.float32]]:
    """Fast guided filter: ``mask`` (any size) -> full-resolution mask guided by ``bgr``."""
    height, width = bgr.shape[:2]
    factor = min(1.0, GUIDE_SIDE / max(height, width))
    gw, gh = max(1, round(width * factor)), max(1, round(height * factor))
    radius = max(1, round(max(gw, gh) * RADIUS_FRACTION))
    ksize = (2 * radius + 1, 2 * radius + 1)

    # Small (guide-resolution) work: guide I, mask p, then the filter's statistics. Every
    # step writes into a plane of these buffers (out=/dst=), so no pixel-derived temporary is
    # left for the allocator to recycle unwiped.
    small_buf, small = REGISTRY.array((9, gh, gw), np.float32, owner=owner,
                                      label="guided-small")
    colour_buf, colour = REGISTRY.array((gh, gw, 3), np.uint8, owner=owner,
                                        label="guided-colour")
    grey_buf, grey_u8 = REGISTRY.array((height, width), np.uint8, owner=owner,
                                       label="guided-grey")
    out_buf, out = REGISTRY.array((height, width), np.float32, owner=owner,
                                  label="person-mask")
    full_buf, full = REGISTRY.array((2, height, width), np.float32, owner=owner,
                                    label="guided-full")
    try:
        guide, p, mean_i, mean_p, corr, var, a, b, tmp = small
        cv2.resize(bgr, (gw, gh), dst=colour, interpolation=cv2.INTER_AREA)
        _grey(colour, grey_u8[:gh, :gw], guide)
        cv2.resize(mask, (gw, gh), dst=p, interpolation=cv2.INTER_LINEAR)
        _box(guide, mean_i, ksize)
        _box(p, mean_p, ksize)
        np.multiply(guide, p, out=tmp)
        _box(tmp, corr, ksize)
        np.multiply(guide, guide, out=tmp)
        _box(tmp, var, ksize)
        np.multiply(mean_i, mean_i, out=tmp)
        var -= tmp  # var(I)
        np.multiply(mean_i, mean_p, out=tmp)
        corr -= tmp  # cov(I, p)
        var += np.float32(EPSILON)
        np.divide(corr, var, out=a)
        np.multiply(a, mean_i, out=tmp)
        np.subtract(mean_p, tmp, out=b)
        _box(a, corr, ksize)  # mean of a
        _box(b, var, ksize)  # mean of b

        # Full resolution: q = mean_a(up) * I + mean_b(up).
        full_guide, coeff = full
        _grey(bgr, grey_u8, full_guide)
        cv2.resize(corr, (width, height), dst=coeff, interpolation=cv2.INTER_LINEAR)
        np.multiply(coeff, full_guide, out=out)
        cv2.resize(var, (width, height), dst=coeff, interpolation=cv2.INTER_LINEAR)
        out += coeff
        np.clip(out, 0.0, 1.0, out=out)
    except BaseException:
        out_buf.release()
        raise
    finally:
        small_buf.release()
        colour_buf.release()
        grey_buf.release()
        full_buf.release()
    return out_buf, out


def _box(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32],
         ksize: tuple[int, int]) -> None:
    """Mean over a ksize window, written into ``dst``."""
    cv2.boxFilter(src, -1, ksize, dst=dst, borderType=cv2.BORDER_REFLECT)


def _grey(bgr: npt.NDArray[np.uint8], scratch: npt.NDArray[np.uint8],
          out: npt.NDArray[np.float32]) -> None:
    """Brightness in [0, 1] written into ``out`` via a uint8 ``scratch`` of the same size."""
    cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY, dst=scratch)
    np.multiply(scratch, np.float32(1.0 / 255.0), out=out, casting="unsafe")


__all__ = ["Segmenter", "guided_upsample"]
