"""Standard ``.cube`` 3D LUTs (the Adobe/Resolve text format): read, check, resample, write.

Why the format: it is what every grading tool exports, so an operator can make a style's colour
grade in the tool they know. Only 3D LUTs are accepted (``LUT_3D_SIZE``); the table is red-
fastest (row index r + N*g + N*N*b), values nominally in [DOMAIN_MIN, DOMAIN_MAX] = [0, 1].
Every problem is reported with the file's name and the line, so a bad file fails at load, not
in a guest's job.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

MIN_SIZE, MAX_SIZE = 2, 65
MAX_BYTES = 8 << 20  # a 65^3 LUT is about 7 MB of text


class CubeError(ValueError):
    """A ``.cube`` file that cannot be used; the message names the file, line and fix."""


def parse_cube(text: str, source: str = "<text>") -> npt.NDArray[np.float32]:
    """The LUT as float32 [b, g, r, 3] (RGB outputs), from the text of a .cube file."""
    size = 0
    domain_min = np.zeros(3)
    domain_max = np.ones(3)
    rows: list[tuple[float, float, float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        head = line.split(None, 1)[0].upper()
        if head == "TITLE":
            continue
        if head == "LUT_1D_SIZE":
            raise CubeError(f"{source}:{number}: a 1D LUT; a style needs a 3D LUT "
                            "(LUT_3D_SIZE)")
        if head == "LUT_3D_SIZE":
            value = line.split()[1:]
            if len(value) != 1 or not value[0].isdigit():
                raise CubeError(f"{source}:{number}: LUT_3D_SIZE must be one whole number")
            size = int(value[0])
            if not MIN_SIZE <= size <= MAX_SIZE:
                raise CubeError(f"{source}:{number}: LUT_3D_SIZE {size} is outside "
                                f"{MIN_SIZE}..{MAX_SIZE}")
            continue
        if head in ("DOMAIN_MIN", "DOMAIN_MAX"):
            values = _floats(line.split()[1:], source, number)
            (domain_min if head == "DOMAIN_MIN" else domain_max)[:] = values
            continue
        if head[0].isalpha():
            raise CubeError(f"{source}:{number}: unknown keyword {head!r}")
        rows.append(_floats(line.split(), source, number))
    if size == 0:
        raise CubeError(f"{source}: no LUT_3D_SIZE line; not a 3D .cube file")
    if len(rows) != size ** 3:
        raise CubeError(f"{source}: LUT_3D_SIZE {size} needs {size ** 3} rows of three "
                        f"numbers, found {len(rows)}")
    if np.any(domain_max <= domain_min):
        raise CubeError(f"{source}: DOMAIN_MAX must exceed DOMAIN_MIN in every channel")
    table: npt.NDArray[np.float64] = np.asarray(rows, np.float64).reshape(size, size, size, 3)
    table = (table - domain_min) / (domain_max - domain_min)
    return np.clip(table, 0.0, 1.0).astype(np.float32)


def _floats(parts: list[str], source: str, number: int) -> tuple[float, float, float]:
    if len(parts) != 3:
        raise CubeError(f"{source}:{number}: expected three numbers, found {len(parts)}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise CubeError(f"{source}:{number}: {' '.join(parts)!r} is not three numbers") \
            from None
    if not all(math.isfinite(v) for v in values):
        raise CubeError(f"{source}:{number}: values must be finite")
    return values[0], values[1], values[2]


def load_cube(path: str | Path) -> npt.NDArray[np.float32]:
    """Read and check a .cube file (at most ``MAX_BYTES``)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise CubeError(f"{p}: larger than {MAX_BYTES >> 20} MB; not a 3D LUT of size "
                            f"<= {MAX_SIZE}")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CubeError(f"{p}: no such .cube file") from None
    except UnicodeDecodeError:
        raise CubeError(f"{p}: not a text .cube file (not UTF-8)") from None
    return parse_cube(text, str(p))


def apply_reference(table: npt.NDArray[np.float32], rgb: npt.NDArray[np.float32]
                    ) -> npt.NDArray[np.float32]:
    """Trilinear lookup of RGB values in [0, 1] (..., 3): the NumPy reference."""
    size = table.shape[0]
    pos = np.clip(rgb, 0.0, 1.0) * (size - 1)
    low = np.minimum(np.floor(pos).astype(np.int64), size - 2)
    frac = pos - low
    out = np.zeros(rgb.shape, np.float64)
    for db in (0, 1):
        for dg in (0, 1):
            for dr in (0, 1):
                weight = ((frac[..., 2] if db else 1 - frac[..., 2])
                          * (frac[..., 1] if dg else 1 - frac[..., 1])
                          * (frac[..., 0] if dr else 1 - frac[..., 0]))
                corner = table[low[..., 2] + db, low[..., 1] + dg, low[..., 0] + dr]
                out += weight[..., None] * corner
    return out.astype(np.float32)


def _interp_matrix(source: int, target: int) -> npt.NDArray[np.float64]:
    """target x source weights of linear interpolation between lattices on [0, 1]."""
    pos = np.linspace(0.0, source - 1.0, target)
    low = np.minimum(np.floor(pos).astype(np.int64), source - 2)
    frac = pos - low
    weights = np.zeros((target, source))
    weights[np.arange(target), low] = 1 - frac
    weights[np.arange(target), low + 1] += frac
    return weights


def resample(table: npt.NDArray[np.float32], size: int) -> npt.NDArray[np.float32]:
    """The same LUT on a ``size``^3 lattice. Trilinear interpolation is separable, so this is
    one small matrix product per axis."""
    if table.shape[0] == size:
        return table
    weights = _interp_matrix(table.shape[0], size)
    out = np.einsum("ib,bgrc->igrc", weights, table.astype(np.float64), optimize=True)
    out = np.einsum("jg,igrc->ijrc", weights, out, optimize=True)
    out = np.einsum("kr,ijrc->ijkc", weights, out, optimize=True)
    return out.astype(np.float32)


def lut_texture(table: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """[b, g, r, 3] -> the style graph's ``lut`` input [3, N, N*N]: texture[c, g, b*N + r]."""
    size = table.shape[0]
    return np.ascontiguousarray(table.transpose(3, 1, 0, 2).reshape(3, size, size * size))


def format_cube(table: npt.NDArray[np.float32], title: str) -> str:
    """A .cube file's text for a [b, g, r, 3] table (red fastest)."""
    size = table.shape[0]
    lines = [f'TITLE "{title}"', f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0.0 0.0 0.0",
             "DOMAIN_MAX 1.0 1.0 1.0"]
    lines += [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in table.reshape(-1, 3).tolist()]
    return "\n".join(lines) + "\n"


def dense_table(table: npt.NDArray[np.float32], levels: int) -> npt.NDArray[np.uint8]:
    """The style graph's ``lut`` input: the LUT sampled at ``levels`` steps per channel,
    rows indexed b * L^2 + g * L + r, BGR uint8 outputs (``graphs.style.table_lookup``)."""
    dense = resample(table, levels).reshape(-1, 3)[:, ::-1]
    return np.ascontiguousarray(np.clip(dense * 255.0 + 0.5, 0, 255).astype(np.uint8))
