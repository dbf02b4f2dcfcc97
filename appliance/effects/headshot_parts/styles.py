"""Headshot styles as data: a backdrop, a light set-up and a colour grade (a .cube 3D LUT).

A style is a TOML file next to its .cube (and, for an image backdrop, its image)::

    title = "Warm studio"
    lut = "warm_studio.cube"
    [backdrop]
    kind = "gradient"            # "gradient", "bokeh" or "image"
    centre = [196, 160, 122]     # RGB
    edge = [88, 62, 46]
    [light]
    key_azimuth = -40            # degrees; negative: from the image's left
    key_elevation = 30
    fill_azimuth = 50
    fill_elevation = 0
    key_fill_ratio = 3.0         # key light : fill light intensity
    strength = 0.6               # how much of the relighting is applied (0..1)

The shipped styles live in ``styles/``; an operator adds one by putting such a file, its .cube
and its backdrop image in the styles directory. Everything is checked when the styles are
loaded (``StyleError`` names the file, the key and the fix), so a bad style never reaches a
guest's job.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from appliance.effects import cube
from appliance.effects.graphs.style import TABLE_LEVELS, backdrop_steps
from appliance.effects.graphs.warp import PORTRAIT
from appliance.effects.headshot_parts import backdrops

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10
    import tomli as tomllib

BUILT_IN = Path(__file__).resolve().parent / "styles"
KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_IMAGE_BYTES = 32 << 20
MAX_IMAGE_PIXELS = 40_000_000


class StyleError(ValueError):
    """A style that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Light:
    key_azimuth: float
    key_elevation: float
    fill_azimuth: float
    fill_elevation: float
    key_fill_ratio: float
    strength: float

    def vector(self) -> npt.NDArray[np.float32]:
        """The style graph's ``light`` input: key and fill directions (towards the light, in
        image axes: x right, y down, z away from the camera) and gains normalised so that a
        surface facing the camera keeps its brightness."""
        key, fill = direction(self.key_azimuth, self.key_elevation), direction(
            self.fill_azimuth, self.fill_elevation)
        facing = np.array([0.0, 0.0, -1.0])

        def half_lambert(d: npt.NDArray[np.float64]) -> float:
            return float((np.dot(facing, d) * 0.5 + 0.5) ** 2)

        norm = self.key_fill_ratio * half_lambert(key) + half_lambert(fill)
        return np.concatenate([key, fill, [self.key_fill_ratio / norm, 1.0 / norm]]).astype(
            np.float32)


def direction(azimuth: float, elevation: float) -> npt.NDArray[np.float64]:
    """Unit vector towards a light at ``azimuth`` degrees (negative: image left) and
    ``elevation`` degrees above the camera's axis."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)])


@dataclass(frozen=True)
class Style:
    key: str
    title: str
    light: Light
    lut_path: Path
    backdrop: dict[str, Any] = field(hash=False, compare=False)
    path: Path = Path()

    @property
    def output_name(self) -> str:
        return f"{self.key}.jpg"

    def table(self) -> npt.NDArray[np.uint8]:
        return _table(self.lut_path)

    def backdrop_image(self) -> npt.NDArray[np.uint8]:
        return _backdrop(self.path, _freeze(self.backdrop))

    def backdrop_steps(self) -> npt.NDArray[np.float32]:
        """The backdrop as the style graph takes it (made once per process)."""
        return _backdrop_steps(self.path, _freeze(self.backdrop))


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@lru_cache(maxsize=16)
def _table(path: Path) -> npt.NDArray[np.uint8]:
    table = cube.dense_table(cube.load_cube(path), TABLE_LEVELS)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=16)
def _backdrop(style_path: Path, frozen: tuple[tuple[str, Any], ...]) -> npt.NDArray[np.uint8]:
    spec = dict(frozen)
    height, width = PORTRAIT
    kind = spec["kind"]
    if kind == "gradient":
        image = backdrops.gradient(height, width, spec["centre"], spec["edge"])
    elif kind == "bokeh":
        image = backdrops.bokeh(height, width, spec["top"], spec["bottom"],
                                [tuple(c) for c in spec["lights"]], int(spec.get("seed", 1)))
    else:
        image = _cover(read_backdrop_image(style_path.parent / spec["image"], style_path),
                       height, width)
    image.setflags(write=False)
    return image


@lru_cache(maxsize=16)
def _backdrop_steps(style_path: Path, frozen: tuple[tuple[str, Any], ...]
                    ) -> npt.NDArray[np.float32]:
    steps = backdrop_steps(_backdrop(style_path, frozen))
    steps.setflags(write=False)
    return steps


def read_backdrop_image(path: Path, style_path: Path) -> npt.NDArray[np.uint8]:
    """Decode an operator's backdrop image (JPEG or PNG), with clear errors."""
    try:
        data = path.read_bytes()
    except OSError:
        raise StyleError(f"{style_path}: backdrop image {path.name!r} cannot be read; put it "
                         "next to the style file") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise StyleError(f"{style_path}: backdrop image {path.name!r} is larger than "
                         f"{MAX_IMAGE_BYTES >> 20} MB")
    if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
        raise StyleError(f"{style_path}: backdrop image {path.name!r} is not a JPEG or PNG")
    raw = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if image is None:
        raise StyleError(f"{style_path}: backdrop image {path.name!r} cannot be decoded")
    h, w = image.shape[:2]
    if h * w > MAX_IMAGE_PIXELS or min(h, w) < 256:
        raise StyleError(f"{style_path}: backdrop image {path.name!r} is {w}x{h}; use one at "
                         f"least 256 pixels on each side and at most 40 megapixels "
                         "(1024x1280 or larger looks best)")
    return np.asarray(image, np.uint8)


def _cover(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Scale to cover the frame, centre-crop."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    big = cv2.resize(image, size, interpolation=interp)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width], dtype=np.uint8)


def _number(table: dict[str, Any], key: str, where: str, low: float, high: float) -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            low <= float(value) <= high):
        raise StyleError(f"{where}: {key!r} must be a number from {low:g} to {high:g}, got "
                         f"{value!r}")
    return float(value)


def _colour(table: dict[str, Any], key: str, where: str) -> tuple[float, float, float]:
    value = table.get(key)
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 255
                       for v in value)):
        raise StyleError(f"{where}: {key!r} must be an RGB colour [r, g, b] of 0..255, got "
                         f"{value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def _check_backdrop(spec: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise StyleError(f"{where}: missing [backdrop] table")
    kind = spec.get("kind")
    if kind == "gradient":
        return {"kind": kind, "centre": _colour(spec, "centre", where),
                "edge": _colour(spec, "edge", where)}
    if kind == "bokeh":
        lights = spec.get("lights")
        if not isinstance(lights, list) or not lights:
            raise StyleError(f"{where}: 'lights' must be a list of RGB colours")
        return {"kind": kind, "top": _colour(spec, "top", where),
                "bottom": _colour(spec, "bottom", where),
                "lights": [_colour({"c": c}, "c", where) for c in lights],
                "seed": int(_number(spec, "seed", where, 0, 2 ** 31) if "seed" in spec else 1)}
    if kind == "image":
        name = spec.get("image")
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise StyleError(f"{where}: 'image' must be the file name of an image next to "
                             "the style file")
        read_backdrop_image(path.parent / name, path)  # checked now, not in a guest's job
        return {"kind": kind, "image": name}
    raise StyleError(f"{where}: backdrop kind must be 'gradient', 'bokeh' or 'image', got "
                     f"{kind!r}")


def load_style(path: Path) -> Style:
    """Read and check one style file (its LUT and backdrop image included)."""
    key = path.stem
    if not KEY.match(key):
        raise StyleError(f"{path}: a style's file name must be lower-case letters, digits "
                         "and _ (it names the output, e.g. corporate_grey.toml)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise StyleError(f"{path}: cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StyleError(f"{path}: not valid TOML: {exc}") from None
    title = data.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 60:
        raise StyleError(f"{path}: 'title' must be a short text (1 to 60 characters)")
    lut_name = data.get("lut")
    if not isinstance(lut_name, str) or "/" in lut_name or not lut_name.endswith(".cube"):
        raise StyleError(f"{path}: 'lut' must name a .cube file next to the style file")
    lut_path = path.parent / lut_name
    try:
        cube.load_cube(lut_path)
    except cube.CubeError as exc:
        raise StyleError(f"{path}: its colour grade is not usable: {exc}") from None
    light = data.get("light")
    where = f"{path} [light]"
    if not isinstance(light, dict):
        raise StyleError(f"{path}: missing [light] table")
    setup = Light(_number(light, "key_azimuth", where, -90, 90),
                  _number(light, "key_elevation", where, -30, 80),
                  _number(light, "fill_azimuth", where, -90, 90),
                  _number(light, "fill_elevation", where, -30, 80),
                  _number(light, "key_fill_ratio", where, 1, 8),
                  _number(light, "strength", where, 0, 1))
    backdrop = _check_backdrop(data.get("backdrop"), f"{path} [backdrop]", path)
    return Style(key, title.strip(), setup, lut_path, backdrop, path)


def load_styles(directories: tuple[Path, ...] = (BUILT_IN,)) -> dict[str, Style]:
    """Every style in the directories, in file-name order; a later directory may add styles
    but not replace a shipped one."""
    found: dict[str, Style] = {}
    for directory in directories:
        if not directory.is_dir():
            raise StyleError(f"{directory}: styles directory not found")
        for path in sorted(directory.glob("*.toml")):
            style = load_style(path)
            if style.key in found:
                raise StyleError(f"{path}: a style named {style.key!r} already exists; "
                                 "rename the file")
            found[style.key] = style
    return found
