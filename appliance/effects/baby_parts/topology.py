"""The warp's fixed topology: the mesh's 852 triangles, its holes filled, rings around it.

Why fixed: every face has the same 468 points in the same order, so one triangle list serves
every warp and no Delaunay step can flip or drop a triangle between two faces. MediaPipe's
tessellation leaves three holes (both eye openings and the inner lips) and ends at the face
oval (36 points). Each hole is filled with a fan around one added point at the hole's centroid;
outside the oval, rings of 36 points each (the oval scaled about its centroid by ``RING_SCALES``)
are joined by quad strips, so hair, ears, neck and frame warp with the face. All of it is derived
from the triangle list itself (boundary edges are those used by one triangle only), so nothing
here restates MediaPipe's index lists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from appliance.models.tessellation import NUM_POINTS

# Oval scaled about its centroid: hairline and ears, hair, shoulders, beyond the frame.
RING_SCALES = (1.22, 1.6, 2.4, 4.5)


@dataclass(frozen=True)
class Topology:
    """Triangles over the extended point list: 468 mesh points, hole centres, ring points."""

    triangles: npt.NDArray[np.int32]      # (T, 3) into the extended points
    face_triangles: int                   # the first this many cover the face (mesh + holes)
    oval: npt.NDArray[np.int32]           # (36,) ordered loop around the face
    holes: tuple[npt.NDArray[np.int32], ...]  # ordered loops: eyes and inner lips
    num_points: int

    def extend(self, mesh2d: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(468, 2) points -> (num_points, 2): hole centroids and rings appended."""
        centres = [mesh2d[loop].mean(axis=0) for loop in self.holes]
        oval = mesh2d[self.oval]
        centre = oval.mean(axis=0)
        rings = [centre + scale * (oval - centre) for scale in RING_SCALES]
        return np.concatenate([mesh2d, np.asarray(centres), *rings]).astype(np.float64)


def boundary_loops(triangles: npt.NDArray[np.int32]) -> list[npt.NDArray[np.int32]]:
    """Ordered loops of the edges that only one triangle uses, largest first."""
    counts = Counter(frozenset(edge) for tri in triangles.tolist()
                     for edge in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])))
    following: dict[int, int] = {}
    for tri in triangles.tolist():
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            if counts[frozenset((a, b))] == 1:
                following[a] = b
    loops = []
    unused = set(following)
    while unused:
        start = min(unused)
        loop = [start]
        unused.discard(start)
        nxt = following[start]
        while nxt != start:
            loop.append(nxt)
            unused.discard(nxt)
            nxt = following[nxt]
        loops.append(np.asarray(loop, np.int32))
    return sorted(loops, key=lambda loop: (-len(loop), int(loop.min())))


@lru_cache(maxsize=2)
def _cached(key: bytes) -> Topology:
    triangles = np.frombuffer(key, np.int32).reshape(-1, 3)
    loops = boundary_loops(triangles)
    oval, holes = loops[0], tuple(loops[1:])
    extra: list[tuple[int, int, int]] = []
    for index, loop in enumerate(holes):
        centre = NUM_POINTS + index
        # The hole's loop runs against the surrounding triangles' orientation: reverse it.
        extra += [(centre, int(loop[(i + 1) % len(loop)]), int(loop[i]))
                  for i in range(len(loop))]
    face_count = len(triangles) + len(extra)
    n = len(oval)
    first_ring = NUM_POINTS + len(holes)
    rings = [oval] + [np.arange(first_ring + k * n, first_ring + (k + 1) * n, dtype=np.int32)
                       for k in range(len(RING_SCALES))]
    for a_ring, b_ring in pairwise(rings):
        for i in range(n):
            j = (i + 1) % n
            extra += [(int(a_ring[i]), int(b_ring[i]), int(b_ring[j])),
                      (int(a_ring[i]), int(b_ring[j]), int(a_ring[j]))]
    all_triangles = np.concatenate([triangles, np.asarray(extra, np.int32)])
    all_triangles.setflags(write=False)
    return Topology(all_triangles, face_count, oval, holes,
                    first_ring + n * len(RING_SCALES))


def topology(triangles: npt.NDArray[np.int32]) -> Topology:
    """The extended topology for MediaPipe's triangle list (cached)."""
    return _cached(np.ascontiguousarray(triangles, np.int32).tobytes())
