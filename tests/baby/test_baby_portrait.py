"""The baby portrait on real faces, judged by our own face pipeline re-run on the output.

Parents: the astronaut with her mirror image (same person, same proportions), and with a copy
stretched to 1.3 x her height and warmed in colour (a parent with a longer face and a warmer
skin), and the camera man (another person, turned and in grey).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from appliance.effects.baby_parts import render, shape
from appliance.vision.pipeline import FacePipeline
from appliance.vision.quality import eye_openness
from tests.baby.conftest import Portraits

Image = npt.NDArray[np.uint8]


def _mesh(pipeline: FacePipeline, image: Image, owner: str) -> npt.NDArray[np.float32]:
    faces = pipeline.analyse(np.ascontiguousarray(image), owner, faces_needed=1,
                             need_eyes_open=True)
    assert faces[0].mesh is not None
    return faces[0].mesh.copy()


def _measures(mesh: npt.NDArray[np.float32]) -> dict[str, float]:
    front = shape.frontal(mesh)
    return shape.measures(shape.apply(shape.to_canonical(front), front))


@pytest.mark.parametrize("pair", [("astronaut", "mirror"), ("astronaut", "camera"),
                                  ("astronaut", "tall")])
def test_one_baby_face_with_open_eyes(portraits: Portraits, pipeline: FacePipeline,
                                      owner: str, pair: tuple[str, str]) -> None:
    out = portraits.get(*pair, 0.5)
    assert out.shape == (1024, 1024, 3) and out.dtype == np.uint8
    assert len(pipeline.detect(np.ascontiguousarray(out), owner)) == 1
    mesh = _mesh(pipeline, out, owner)  # the gates pass, eyes_open included
    assert min(eye_openness(mesh)) > 0.25  # both eyes, not just the more open one


def test_unchanged_proportions_lie_between_the_parents(
        portraits: Portraits, pipeline: FacePipeline, owner: str) -> None:
    """The brows' height over the eye line (in outer eye-corner widths) is outside every
    feature the child transform changes. The parents are measured the same way as the baby,
    through the portrait without child proportions at resemblance 0 and 1, so the bias of
    re-meshing a rendered portrait (about -0.01 here) cancels."""
    a, b = (_measures(_mesh(pipeline, portraits.get("astronaut", "tall", r, False), owner))
            ["brow_height"] for r in (0.0, 1.0))
    baby = _measures(_mesh(pipeline, portraits.get("astronaut", "tall", 0.5), owner))
    print("brow_height A", a, "B", b, "baby", baby["brow_height"])
    assert b - a > 0.02  # the tall parent's brows sit measurably higher
    assert a < baby["brow_height"] < b


# The mesh model regresses towards the adult faces it was trained on, so re-meshing recovers
# only part of a local change: measured on these parents, 0.5-1.0 of it depending on the
# feature (nose length fully, nose width about half). The test asks for at least a third of
# the documented change, in its direction, and at most 1.3 times it; both against the same
# parents rendered without child proportions, so everything else the portrait does cancels.
# The larger eyes (x 1.15 opening) are plain in the picture but not in the mesh, which puts
# the lids where an adult's would be (1.01 measured even for x 1.35): they are checked on the
# geometry (test_baby_geometry) and by the eye test below, not here.
RECOVERED = (0.33, 1.3)


@pytest.mark.parametrize("name", ["lower_face", "nose_length", "nose_width", "mouth_width"])
def test_changed_proportions_move_as_documented(portraits: Portraits, pipeline: FacePipeline,
                                                owner: str, name: str) -> None:
    child = _measures(_mesh(pipeline, portraits.get("astronaut", "mirror", 0.5), owner))
    adult = _measures(_mesh(pipeline, portraits.get("astronaut", "mirror", 0.5, False), owner))
    documented = shape.EXPECTED_RATIOS[name] - 1.0
    measured = child[name] / adult[name] - 1.0
    print(name, "documented", documented, "measured", measured)
    assert RECOVERED[0] <= measured / documented <= RECOVERED[1]


def test_resemblance_leans_to_each_parent(portraits: Portraits, pipeline: FacePipeline,
                                          owner: str) -> None:
    a, b = (_measures(_mesh(pipeline, portraits.get("astronaut", "tall", r, False), owner))
            ["brow_height"] for r in (0.0, 1.0))
    m0, m1 = (_measures(_mesh(pipeline, portraits.get("astronaut", "tall", r), owner))
              ["brow_height"] for r in (0.0, 1.0))
    print("lean A", a, "B", b, "r0", m0, "r1", m1)
    assert abs(m0 - a) < abs(m0 - b)
    assert abs(m1 - b) < abs(m1 - a)
    assert m1 - m0 > 0.5 * (b - a)


def _skin_lab(image: Image, mesh: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Mean Lab of six cheek patches (7 x 7 pixels) placed by the mesh."""
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float64)
    samples = []
    for index in (50, 280, 101, 330, 123, 352):
        x, y = (round(float(v)) for v in mesh[index, :2])
        samples.append(lab[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3).mean(axis=0))
    return np.mean(samples, axis=0)


def test_resemblance_leans_in_colour(portraits: Portraits, pipeline: FacePipeline,
                                     parents: dict[str, render.Parent], owner: str) -> None:
    """Parent B is parent A warmed (more red, less blue): the skin's a* and b* follow the
    slider (lightness is left out: the retouch and backdrop change it for both alike)."""
    a = _skin_lab(parents["astronaut"].bgr, parents["astronaut"].mesh)[1:]
    b = _skin_lab(parents["tall"].bgr, parents["tall"].mesh)[1:]
    m0, m1 = (_skin_lab(o, _mesh(pipeline, o, owner))[1:]
              for o in (portraits.get("astronaut", "tall", r) for r in (0.0, 1.0)))
    print("colour A", a, "B", b, "r0", m0, "r1", m1)
    assert np.linalg.norm(b - a) > 5.0
    assert np.linalg.norm(m0 - a) < np.linalg.norm(m0 - b)
    assert np.linalg.norm(m1 - b) < np.linalg.norm(m1 - a)
    assert np.linalg.norm(m1 - m0) > 0.5 * np.linalg.norm(b - a)


def _bilinear(image: npt.NDArray[np.float32], points: npt.NDArray[np.float64]
              ) -> npt.NDArray[np.float32]:
    mx = points[:, 0].astype(np.float32).reshape(1, -1) - 0.5
    my = points[:, 1].astype(np.float32).reshape(1, -1) - 0.5
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR).reshape(len(points), -1)


@pytest.mark.parametrize("pair", [("astronaut", "mirror"), ("astronaut", "camera")])
def test_no_seams_along_triangle_edges(portraits: Portraits, parents: dict[str, render.Parent],
                                       pair: tuple[str, str]) -> None:
    """Across every inner edge of the face's triangles, the colour step (pixels 1.5 px either
    side of the edge's midpoint) is compared with the same step taken 4 px further into one
    triangle. A seam (a gap or two maps that disagree) would make the step on the edges
    larger than off them. Edges on the skin (cheeks, forehead, chin: away from eyes, brows,
    nose and lips, whose own lines are sharp on purpose); allowed: 15 % plus 1.5 levels on
    average, and 3 levels more than off the edges at the 99th percentile."""
    image = portraits.get(*pair, 0.5).astype(np.float32)
    lay = render.layout((parents[pair[0]], parents[pair[1]]), 0.5, portraits.triangles)
    tris = lay.topo.triangles[:lay.topo.face_triangles]
    edges: dict[frozenset[int], int] = {}
    for tri in tris.tolist():
        for e in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            edges[frozenset(e)] = edges.get(frozenset(e), 0) + 1
    skin = render._skin_mask(lay, render.triangle_ids(lay.baby, lay.topo.triangles, 1024,
                                                      lay.topo.face_triangles))
    inner = np.asarray([sorted(e) for e, n in edges.items() if n == 2])
    on_skin = [all(skin[min(1023, max(0, round(y))), min(1023, max(0, round(x)))]
                   for x, y in lay.baby[list(e)]) for e in inner]
    inner = inner[np.asarray(on_skin)]
    p, q = lay.baby[inner[:, 0]], lay.baby[inner[:, 1]]
    length = np.linalg.norm(q - p, axis=1)
    keep = length > 4.0
    p, q, length = p[keep], q[keep], length[keep]
    mid = 0.5 * (p + q)
    normal = np.stack([-(q - p)[:, 1], (q - p)[:, 0]], axis=1) / length[:, None]

    def step(centre: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        diff = _bilinear(image, centre + 1.5 * normal) - _bilinear(image, centre - 1.5 * normal)
        return np.abs(diff).mean(axis=1)

    on_edges = step(mid)
    off_edges = step(mid + 4.0 * normal)
    print(pair, "edges", len(on_edges), "mean on", on_edges.mean(), "off", off_edges.mean(),
          "max", on_edges.max())
    assert len(on_edges) > 300
    assert on_edges.mean() <= 1.15 * off_edges.mean() + 1.5
    assert np.percentile(on_edges, 99) <= np.percentile(off_edges, 99) + 3.0


def irises(image: Image, mesh: npt.NDArray[np.float32], contour: tuple[int, ...]) -> int:
    """Dark valleys along the eye: the grey level across the eye (mean over the middle third of
    its height, corners left out), smoothed by 5 % of the eye's width (a catchlight is
    smaller), and its minima whose prominence is at least a fifth of the profile's range.
    One iris gives one; an iris and a ghost of it give two."""
    from scipy.signal import find_peaks

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)
    pts = mesh[list(contour), :2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    width, height = x1 - x0, y1 - y0
    rows = slice(round(y0 + height / 3), round(y1 - height / 3) + 1)
    cols = slice(round(x0 + 0.1 * width), round(x1 - 0.1 * width) + 1)
    profile = cv2.GaussianBlur(grey[rows, cols].mean(axis=0).reshape(1, -1), (0, 0),
                               0.05 * width).ravel()
    valleys, _ = find_peaks(-profile, prominence=0.2 * float(np.ptp(profile)))
    return len(valleys)


@pytest.mark.parametrize("pair", [("astronaut", "mirror"), ("astronaut", "camera")])
def test_one_pair_of_eyes(portraits: Portraits, pipeline: FacePipeline, owner: str,
                          pair: tuple[str, str]) -> None:
    """No ghost: one iris in each eye. The measure is shown to see a ghost: the same portrait
    blended half and half with itself shifted by one iris's width has two in an eye."""
    out = portraits.get(*pair, 0.5)
    mesh = _mesh(pipeline, out, owner)
    eyes = (shape.RIGHT_EYE, shape.LEFT_EYE)
    assert [irises(out, mesh, c) for c in eyes] == [1, 1]
    # An iris is about 0.3 of the eye's width across: a ghost one iris to the side.
    shift = round(0.3 * float(np.ptp(mesh[list(shape.RIGHT_EYE), 0])))
    ghost = ((out.astype(np.uint16) + np.roll(out, shift, axis=1)) // 2).astype(np.uint8)
    assert max(irises(ghost, mesh, c) for c in eyes) >= 2
