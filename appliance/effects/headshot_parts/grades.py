"""The shipped styles' colour grades, as formulas; ``python -m`` writes them as .cube files.

The .cube files in ``styles/`` are what the booth reads (an operator's grade is read the same
way); these formulas only make the shipped ones reproducible (a test checks the files match).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.effects import cube

SIZE = 17
F32 = npt.NDArray[np.float32]


def _s_curve(x: F32, amount: float) -> F32:
    """Gentle contrast around mid-grey (smoothstep blend)."""
    smooth = x * x * (3 - 2 * x)
    return (x * (1 - amount) + smooth * amount).astype(np.float32)


def _luma(rgb: F32) -> F32:
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def corporate_grey(rgb: F32) -> F32:
    """Neutral, a touch cooler and crisper, slightly less saturated."""
    y = _luma(rgb)[..., None]
    out = y + (rgb - y) * 0.9
    out = _s_curve(np.clip(out, 0, 1), 0.2) * np.array([0.99, 1.0, 1.02], np.float32)
    return np.clip(out, 0, 1).astype(np.float32)


def warm_studio(rgb: F32) -> F32:
    """Warm, soft: lifted shadows, reds up, blues down."""
    out = rgb * np.array([1.05, 1.0, 0.9], np.float32) + np.array([0.02, 0.01, 0.0], np.float32)
    return np.clip(_s_curve(np.clip(out, 0, 1), 0.1) * 0.97 + 0.03, 0, 1).astype(np.float32)


def classic_monochrome(rgb: F32) -> F32:
    """Black and white with a classic contrast curve and a faint warm tone."""
    y = _s_curve(_luma(rgb), 0.35)[..., None]
    return np.clip(y * np.array([1.0, 0.985, 0.955], np.float32) + 0.01, 0, 1).astype(
        np.float32)


def outdoor_bokeh(rgb: F32) -> F32:
    """Fresh daylight: a little more saturation and a golden highlight."""
    y = _luma(rgb)[..., None]
    out = y + (rgb - y) * 1.12
    out = out + np.array([0.03, 0.015, -0.02], np.float32) * y
    return np.clip(_s_curve(np.clip(out, 0, 1), 0.12), 0, 1).astype(np.float32)


GRADES: dict[str, Callable[[F32], F32]] = {
    "corporate_grey": corporate_grey, "warm_studio": warm_studio,
    "classic_monochrome": classic_monochrome, "outdoor_bokeh": outdoor_bokeh}


def lattice(grade: Callable[[F32], F32], size: int = SIZE) -> F32:
    """[b, g, r, 3] table of a grade."""
    axis = np.linspace(0, 1, size, dtype=np.float32)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return grade(np.stack([r, g, b], axis=-1))


def cube_text(key: str) -> str:
    return cube.format_cube(lattice(GRADES[key]), key.replace("_", " "))


def main() -> None:  # pragma: no cover - a developer's tool
    target = Path(__file__).resolve().parent / "styles"
    for key in GRADES:
        (target / f"{key}.cube").write_text(cube_text(key), encoding="ascii")


if __name__ == "__main__":  # pragma: no cover
    main()
