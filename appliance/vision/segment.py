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
from appliance.vision.resample import shrink_into
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
STRIP_ROWS = 128  # full-resolution rows processed at a time
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
            shrink_into(bgr, square, owner)
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
        gw, gh = guide_size(bgr)
        low_buf, low = REGISTRY.array((mh, mw), np.float32, owner=owner, label="segment-mask")
        colour_buf, colour = REGISTRY.array((gh, gw, 3), np.uint8, owner=owner,
                                            label="guided-colour")
        try:
            # One pass over the full-size photo makes the guide; the model's input is made
            # from the guide (both are far smaller than the photo).
            shrink_into(bgr, colour, owner)
            self.low_res_mask(colour, owner, low)
            return guided_upsample(bgr, low, owner, colour)
        finally:
            low_buf.release()
            colour_buf.release()


def guide_size(bgr: npt.NDArray[np.uint8]) -> tuple[int, int]:
    """(width, height) at which the guided filter's coefficients are fitted."""
    height, width = bgr.shape[:2]
    factor = min(1.0, GUIDE_SIDE / max(height, width))
    return max(1, round(width * factor)), max(1, round(height * factor))


def guided_upsample(bgr: npt.NDArray[np.uint8], mask: npt.NDArray[np.float32], owner: str,
                    guide_colour: npt.NDArray[np.uint8] | None = None) -> tuple[
                        SecureBuffer, npt.NDArray[np.float32]]:
    """Fast guided filter: ``mask`` (any size) -> full-resolution mask guided by ``bgr``.

    ``guide_colour`` is ``bgr`` already shrunk to ``guide_size`` (made here when not given).
    """
    height, width = bgr.shape[:2]
    gw, gh = guide_size(bgr)
    radius = max(1, round(max(gw, gh) * RADIUS_FRACTION))
    ksize = (2 * radius + 1, 2 * radius + 1)

    # Small (guide-resolution) work: guide I, mask p, then the filter's statistics. Every
    # step writes into a plane of these buffers (out=/dst=), so no pixel-derived temporary is
    # left for the allocator to recycle unwiped.
    small_buf, small = REGISTRY.array((9, gh, gw), np.float32, owner=owner,
                                      label="guided-small")
    colour_buf, colour = REGISTRY.array((gh, gw, 3), np.uint8, owner=owner,
                                        label="guided-colour")
    grey_buf, grey_u8 = REGISTRY.array((gh, gw), np.uint8, owner=owner, label="guided-grey")
    strip_buf, strip_f = REGISTRY.array((STRIP_ROWS, width), np.float32, owner=owner,
                                        label="guided-strip")
    strip_u8_buf, strip_u8 = REGISTRY.array((STRIP_ROWS, width), np.uint8, owner=owner,
                                            label="guided-strip-grey")
    out_buf, out = REGISTRY.array((height, width), np.float32, owner=owner,
                                  label="person-mask")
    try:
        guide, p, mean_i, mean_p, corr, var, a, b, tmp = small
        if guide_colour is None:
            shrink_into(bgr, colour, owner)
        else:
            np.copyto(colour, guide_colour)
        cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY, dst=grey_u8)
        np.multiply(grey_u8, np.float32(1.0 / 255.0), out=guide, casting="unsafe")
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

        # Full resolution, strip by strip: q = mean_a(up) * I + mean_b(up), with I the grey
        # image scaled by 1/255 inside the multiply. Working in strips keeps the only
        # full-size buffer the result itself: a fresh secure page costs far more on first touch
        # than the arithmetic on it, so fewer full-size buffers is what makes this fast.
        _upsample_strips(bgr, corr, var, out, strip_f, strip_u8)
        np.clip(out, 0.0, 1.0, out=out)
    except BaseException:
        out_buf.release()
        raise
    finally:
        small_buf.release()
        colour_buf.release()
        grey_buf.release()
        strip_buf.release()
        strip_u8_buf.release()
    return out_buf, out


def _upsample_strips(bgr: npt.NDArray[np.uint8], mean_a: npt.NDArray[np.float32],
                     mean_b: npt.NDArray[np.float32], out: npt.NDArray[np.float32],
                     strip_f: npt.NDArray[np.float32], strip_u8: npt.NDArray[np.uint8]) -> None:
    """out = up(mean_a) * grey(bgr) / 255 + up(mean_b), bilinear, STRIP_ROWS rows at a time.

    Each strip's upsampling is the affine map cv2.resize uses (pixel centres aligned), so the
    strips join without seams.
    """
    height, width = out.shape
    sx = mean_a.shape[1] / width
    sy = mean_a.shape[0] / height
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for top in range(0, height, STRIP_ROWS):
        rows = min(STRIP_ROWS, height - top)
        target = out[top:top + rows]
        matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5],
                           [0.0, sy, (top + 0.5) * sy - 0.5]], np.float64)
        cv2.warpAffine(mean_a, matrix, (width, rows), dst=target, flags=flags,
                       borderMode=cv2.BORDER_REPLICATE)
        cv2.cvtColor(bgr[top:top + rows], cv2.COLOR_BGR2GRAY, dst=strip_u8[:rows])
        cv2.multiply(target, strip_u8[:rows], dst=target, scale=1.0 / 255.0,
                     dtype=cv2.CV_32F)
        cv2.warpAffine(mean_b, matrix, (width, rows), dst=strip_f[:rows], flags=flags,
                       borderMode=cv2.BORDER_REPLICATE)
        cv2.add(target, strip_f[:rows], dst=target)


def _box(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32],
         ksize: tuple[int, int]) -> None:
    """Mean over a ksize window, written into ``dst``."""
    cv2.boxFilter(src, -1, ksize, dst=dst, borderType=cv2.BORDER_REFLECT)


__all__ = ["Segmenter", "guided_upsample"]
