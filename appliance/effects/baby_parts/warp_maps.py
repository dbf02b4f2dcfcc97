"""Per-pixel maps of a piecewise-affine warp over a fixed triangulation.

Why rasterise triangle ids: each output pixel needs the affine map of the one triangle that
covers it. Drawing every triangle's id into an int32 image (OpenCV's polygon fill, sub-pixel
vertices) and gathering six affine coefficients per pixel is a few vectorised passes, and
neighbouring triangles share their edge's two vertices, so their maps agree along it: the warp
is continuous and leaves no seam. Triangles are drawn rings first and face last, so the face
wins wherever a strongly turned head makes an outer strip overlap it.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

SUBPIXEL_BITS = 4


def triangle_ids(points: npt.NDArray[np.float64], triangles: npt.NDArray[np.int32],
                 size: int, face_triangles: int) -> npt.NDArray[np.int32]:
    """(size, size) id of the triangle covering each pixel centre, -1 where none."""
    ids = np.full((size, size), -1, np.int32)
    scale = float(1 << SUBPIXEL_BITS)
    # Pixel centres sit at integer coordinates for OpenCV's fill, at +0.5 in our maps.
    fixed = np.round((points - 0.5) * scale).astype(np.int64)
    fixed = np.clip(fixed, -(1 << 28), 1 << 28).astype(np.int32)
    order = list(range(face_triangles, len(triangles))) + list(range(face_triangles))
    for t in order:
        cv2.fillConvexPoly(ids, fixed[triangles[t]], int(t), lineType=cv2.LINE_8,
                           shift=SUBPIXEL_BITS)
    return ids


def affines(dst: npt.NDArray[np.float64], src: npt.NDArray[np.float64],
            triangles: npt.NDArray[np.int32]) -> npt.NDArray[np.float64]:
    """(T, 3, 2): for each triangle, [x, y, 1] @ A maps its dst corners onto its src corners.
    A degenerate triangle (a closed mouth's sliver) gets the least-squares map."""
    d = np.concatenate([dst[triangles], np.ones((len(triangles), 3, 1))], axis=2)
    s = src[triangles]
    return np.asarray(np.linalg.pinv(d) @ s, np.float64)


def source_map(ids: npt.NDArray[np.int32], matrices: npt.NDArray[np.float64],
               out: npt.NDArray[np.float32] | None = None,
               origin: tuple[int, int] = (0, 0)) -> npt.NDArray[np.float32]:
    """(H, W, 2) source coordinates (pixel-centre convention: centre of pixel i is i + 0.5);
    ``ids`` may be a window of the output whose top-left pixel is ``origin`` (x, y)."""
    h, w = ids.shape
    if out is None:
        out = np.empty((h, w, 2), np.float32)
    safe = np.where(ids >= 0, ids, 0)
    coeffs = matrices.astype(np.float32)
    xs = np.arange(w, dtype=np.float32) + np.float32(origin[0] + 0.5)
    ys = (np.arange(h, dtype=np.float32) + np.float32(origin[1] + 0.5))[:, None]
    for axis in range(2):
        a, b, c = (coeffs[:, k, axis][safe] for k in range(3))
        out[..., axis] = a * xs + b * ys + c
    return out
