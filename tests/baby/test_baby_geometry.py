"""The baby's geometry: MediaPipe's triangles from the pinned wheel, the filled holes and rings,
the eye-corner alignment, the weighted mean and the documented child proportions."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from appliance.effects.baby_parts import render, shape
from appliance.effects.baby_parts.topology import RING_SCALES, boundary_loops, topology
from appliance.models import tessellation
from appliance.models.errors import FetchError, HashMismatchError
from appliance.models.manifest import load_manifest


def _signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, k]] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1])
                  - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def test_triangles_are_mediapipes_852(engines_dir: Path) -> None:
    triangles = tessellation.load_triangles(engines_dir)
    assert triangles.shape == (852, 3)
    assert set(np.unique(triangles)) == set(range(468))  # every point is a vertex
    edges = {frozenset(e) for t in triangles.tolist()
             for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    assert len(edges) == 1322  # 2,556 directed edges, shared ones counted once
    # A closed surface patch: every edge is used by one (boundary) or two triangles.
    counts = [sum(1 for t in triangles.tolist() if set(e) <= set(t)) for e in list(edges)[:200]]
    assert set(counts) <= {1, 2}


def _wheel(engines_dir: Path) -> Path:
    source = load_manifest().models["face_landmark"].source.wheel
    wheel = engines_dir / "cache" / source.wheel
    if not wheel.is_file():
        pytest.skip("the pinned wheel is not cached: run `ephemera build`")
    return wheel


def test_build_reproduces_the_pinned_file(engines_dir: Path, tmp_path: Path) -> None:
    out = tessellation.write_from_wheel(_wheel(engines_dir), tmp_path)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == tessellation.FILE_SHA256
    assert out.read_bytes() == (engines_dir / tessellation.FILE_NAME).read_bytes()


def test_a_tampered_member_is_refused(engines_dir: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(_wheel(engines_dir)) as zf:
        text = zf.read(tessellation.MEMBER).decode()
    fake = tmp_path / "fake.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(tessellation.MEMBER, text.replace("(127, 34)", "(127, 35)", 1))
    with pytest.raises(HashMismatchError):
        tessellation.write_from_wheel(fake, tmp_path / "out")
    assert not (tmp_path / "out" / tessellation.FILE_NAME).exists()


def test_the_parser_checks_each_triple() -> None:
    good = "FACEMESH_TESSELATION = frozenset([(1, 2), (2, 3), (3, 1)])\n"
    with pytest.raises(FetchError, match="edges"):  # too few edges for 852 triangles
        tessellation.triangles_from_source(good)
    broken = "FACEMESH_TESSELATION = frozenset([" + ", ".join(
        ["(1, 2), (2, 3), (3, 4)"] * 852) + "])\n"
    with pytest.raises(FetchError, match="do not close"):
        tessellation.triangles_from_source(broken)
    with pytest.raises(FetchError, match="no FACEMESH_TESSELATION"):
        tessellation.triangles_from_source("X = 1\n")


def test_holes_and_rings(engines_dir: Path) -> None:
    triangles = tessellation.load_triangles(engines_dir)
    loops = boundary_loops(triangles)
    assert sorted(len(loop) for loop in loops) == [16, 16, 20, 36]  # eyes, inner lips, oval
    topo = topology(triangles)
    assert topo.num_points == 468 + 3 + 36 * len(RING_SCALES)
    assert topo.face_triangles == 852 + 16 + 16 + 20
    assert len(topo.triangles) == topo.face_triangles + 2 * 36 * len(RING_SCALES)
    # With the holes filled, only the outermost ring is a boundary.
    outer = boundary_loops(topo.triangles)
    assert len(outer) == 1 and len(outer[0]) == 36


def test_alignment_puts_the_eye_corners_in_place(parents: dict[str, render.Parent]) -> None:
    mesh = parents["astronaut"].mesh
    matrix = shape.to_canonical(mesh)
    corners = shape.apply(matrix, mesh[[shape.RIGHT_OUTER, shape.LEFT_OUTER], :2])
    np.testing.assert_allclose(corners, [[-0.5, 0.0], [0.5, 0.0]], atol=1e-9)
    # Invariant to where the face is, its size and roll.
    angle, scale = 0.4, 2.7
    rot = scale * np.asarray([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = mesh[:, :2] @ rot.T + [100.0, -40.0]
    np.testing.assert_allclose(shape.apply(shape.to_canonical(moved), moved),
                               shape.apply(matrix, mesh[:, :2]), atol=1e-9)


def test_mean_shape_runs_from_a_to_b() -> None:
    a, b = np.zeros((5, 2)), np.ones((5, 2))
    np.testing.assert_allclose(shape.mean_shape(a, b, 0.0), a)
    np.testing.assert_allclose(shape.mean_shape(a, b, 1.0), b)
    np.testing.assert_allclose(shape.mean_shape(a, b, 0.25), 0.25)


@pytest.mark.parametrize("a,b", [("astronaut", "mirror"), ("astronaut", "camera"),
                                 ("astronaut", "tall")])
def test_child_proportions_are_the_documented_ones(parents: dict[str, render.Parent],
                                                   engines_dir: Path, a: str, b: str) -> None:
    triangles = tessellation.load_triangles(engines_dir)
    adult = render.layout((parents[a], parents[b]), 0.5, triangles, child=False)
    child = render.layout((parents[a], parents[b]), 0.5, triangles)
    before = shape.measures(adult.baby[:468])
    after = shape.measures(child.baby[:468])
    for name, ratio in shape.EXPECTED_RATIOS.items():
        if name == "brow_height":
            # Outside every feature: unchanged, apart from the eyes' fall-off reaching the
            # lowest brow points (under 2 % of the brows' height).
            assert after[name] / before[name] == pytest.approx(1.0, abs=0.02)
        else:
            assert after[name] / before[name] == pytest.approx(ratio, abs=0.004), name
    # The forehead is taller: the mesh's top point moved up by FOREHEAD x its height over
    # the brows.
    brow = np.mean(adult.baby[list(shape.BROWS), 1])
    assert (brow - child.baby[10, 1]) / (brow - adult.baby[10, 1]) == pytest.approx(
        shape.FOREHEAD, abs=0.02)
    # No triangle turns over. The field itself preserves orientation everywhere (each step
    # only scales along one axis with a positive derivative), but sampling it at three corners
    # can tip a sliver: the face's silhouette has triangles with nearly collinear corners
    # (area under 2 % of the longest edge squared), which are allowed to tip.
    topo = child.topo
    before_area = _signed_areas(adult.baby, topo.triangles)
    flips = np.sign(_signed_areas(child.baby, topo.triangles)) != np.sign(before_area)
    corners = adult.baby[topo.triangles]
    longest = np.max([np.linalg.norm(corners[:, i] - corners[:, (i + 1) % 3], axis=1)
                      for i in range(3)], axis=0)
    proper = np.abs(before_area) > 0.02 * longest ** 2
    assert proper.sum() > 0.9 * len(proper)
    assert not np.any(flips & proper)
