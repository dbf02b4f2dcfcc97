"""Surface normals for relighting: from the face mesh where there is one, from the person
mask elsewhere, at 1/4 of the frame's size (shading is smooth; the style graph resizes up).

Face: MediaPipe's mesh has (x, y, z) with z on the scale of x and y, negative towards the
camera. Triangles come from a Delaunay triangulation of the mesh's own (x, y) (the topology is
the same for every face, the triangulation only needs to cover it); each triangle's normal is
drawn flat and the map smoothed by about 2.5 % of the face's width, which removes the facets.
Hair, ears, neck and shoulders are not in the mesh: there the normal is inflated from the
person mask, tilting outwards where the mask falls off (a soft "dome"), so the key light
models the body too. The blend weight ``w`` (the fourth plane) is the relight strength, faded
towards the mesh's edge and off the person: the change stays gentle where the geometry is
guessed.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects.graphs.style import SHADE_FACTOR
from appliance.effects.headshot_parts.landmarks import FACE_OVAL

F32 = npt.NDArray[np.float32]
BODY_TILT = 6.0  # how strongly the mask's fall-off tilts the inflated normals
BODY_WEIGHT = 0.7  # relight strength on the body relative to the face


def triangles(points: npt.NDArray[Any]) -> npt.NDArray[np.int32]:
    """Delaunay triangles (indices) of the mesh's x, y."""
    lo = points[:, :2].min(axis=0) - 2
    hi = points[:, :2].max(axis=0) + 2
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]) + 1,
                           int(hi[1] - lo[1]) + 1))
    subdiv.insert([(float(x), float(y)) for x, y in points[:, :2]])
    lookup = {(round(float(x), 3), round(float(y), 3)): i for i, (x, y) in
              enumerate(points[:, :2])}
    out = []
    for tri in subdiv.getTriangleList():
        idx = [lookup.get((round(float(tri[k]), 3), round(float(tri[k + 1]), 3)))
               for k in (0, 2, 4)]
        if None not in idx:
            out.append(idx)
    return np.asarray(out, np.int32).reshape(-1, 3)


def face_normals(points: F32, height: int, width: int) -> tuple[F32, F32]:
    """(normals 3 x h x w, coverage h x w) of the mesh at 1/4 size."""
    h, w = height // SHADE_FACTOR, width // SHADE_FACTOR
    small = points / SHADE_FACTOR
    tris = triangles(small)
    a, b, c = small[tris[:, 0]], small[tris[:, 1]], small[tris[:, 2]]
    normals = np.cross(b - a, c - a)
    normals *= np.where(normals[:, 2:3] > 0, -1.0, 1.0)  # towards the camera: z < 0
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-6)
    planes: npt.NDArray[Any] = np.zeros((h, w, 3), np.float32)
    coverage: npt.NDArray[Any] = np.zeros((h, w), np.float32)
    for tri, normal in zip(tris, normals, strict=True):
        poly = np.round(small[tri, :2] * 16).astype(np.int32)
        cv2.fillConvexPoly(planes, poly, normal.tolist(), cv2.LINE_8, 4)
    oval = np.round(small[list(FACE_OVAL), :2] * 16).astype(np.int32)
    cv2.fillPoly(coverage, [oval], 1.0, cv2.LINE_8, 4)
    face_width = float(np.ptp(small[:, 0]))
    sigma = max(1.0, 0.025 * face_width)
    planes = cv2.GaussianBlur(planes * coverage[..., None], (0, 0), sigma)
    weight = cv2.GaussianBlur(coverage, (0, 0), sigma)
    planes = planes / np.maximum(weight[..., None], 1e-3)
    coverage = cv2.GaussianBlur(coverage, (0, 0), 2 * sigma)
    return (np.ascontiguousarray(planes.transpose(2, 0, 1), dtype=np.float32),
            np.asarray(coverage, np.float32))


def body_normals(alpha_small: npt.NDArray[Any]) -> F32:
    """Normals inflated from the person mask (3 x h x w), facing the camera inside."""
    soft = cv2.GaussianBlur(alpha_small, (0, 0), max(2.0, alpha_small.shape[1] / 40))
    gy, gx = np.gradient(soft)
    normals = np.stack([-gx * BODY_TILT * alpha_small.shape[1] / 64,
                        -gy * BODY_TILT * alpha_small.shape[1] / 64,
                        -np.ones_like(soft)])
    return (normals / np.linalg.norm(normals, axis=0, keepdims=True)).astype(np.float32)


def shading_map(points_out: F32, alpha: F32, strength: float) -> F32:
    """The style graph's ``shading`` input: (nx, ny, nz, w) at 1/4 of the frame's size."""
    height, width = alpha.shape
    h, w = height // SHADE_FACTOR, width // SHADE_FACTOR
    alpha_small = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    face, coverage = face_normals(points_out, height, width)
    body = body_normals(alpha_small)
    normals = face * coverage + body * (1 - coverage)
    normals /= np.maximum(np.linalg.norm(normals, axis=0, keepdims=True), 1e-6)
    # Gentle at the mesh's edge: full strength inside the face, BODY_WEIGHT outside it.
    weight = strength * alpha_small * (BODY_WEIGHT + (1 - BODY_WEIGHT) * coverage)
    return np.ascontiguousarray(np.concatenate([normals, weight[None]]).astype(np.float32))
