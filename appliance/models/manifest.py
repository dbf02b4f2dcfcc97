"""engines/models.toml: the one list of models, where each comes from and how it is used.

Why a manifest: every byte the booth runs is pinned here (the wheel's sha256, each member's,
and the converted ONNX file's, conversion being byte-deterministic), so a model supply chain
attack or a silently changed upstream file stops the build instead of reaching a guest. The
entry also tells pre- and post-processing what the network expects: tensor names and shapes,
layout, input normalisation, precision policy and licence.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from appliance.models.atomic import write_atomic
from appliance.models.backend import TensorSpec
from appliance.models.errors import ManifestError

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10
    import tomli as tomllib

DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent.parent / "engines" / "models.toml"
PRECISIONS = ("fp16", "fp32")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SYMBOL = re.compile(r"^[a-z][a-z0-9_]*$")
GENERATED = "generated"  # source = "generated": a graph built by appliance.effects.graphs
OPERATOR_FILE = "file"  # source = "file": an operator-supplied ONNX file at ``path``


@dataclass(frozen=True)
class WheelSource:
    """A PyPI wheel pinned by exact file name and sha256, fetched with platform-free flags."""

    key: str
    requirement: str  # e.g. "mediapipe==0.10.14"
    wheel: str  # exact file name of the pinned wheel
    sha256: str
    platform: str
    python_version: str
    implementation: str
    licence: str

    @property
    def name(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]


@dataclass(frozen=True)
class ModelSource:
    """One member of a pinned wheel: the file a model is converted from."""

    wheel: WheelSource
    member: str
    member_sha256: str

    def describe(self) -> str:
        return f"{self.wheel.requirement}:{self.member}"


@dataclass(frozen=True)
class GeneratedSource:
    """A graph the project generates in code (``appliance.effects.graphs``): no download, the
    builder function's output is pinned by ``onnx_sha256`` like a converted model's."""

    generator: str  # "appliance.effects.graphs.<module>:<function>"

    def describe(self) -> str:
        return f"generated:{self.generator}"


@dataclass(frozen=True)
class FileSource:
    """An operator-supplied ONNX file (e.g. a learned image-to-image model), pinned by its
    sha256 (``onnx_sha256``) and copied into the engines directory by the build."""

    path: Path

    def describe(self) -> str:
        return f"file:{self.path}"


Source = ModelSource | GeneratedSource | FileSource


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, shape, dtype and layout (as the ONNX model has it).

    A dimension is a positive integer or, for a graph with dynamic shapes, a symbol (e.g.
    ``"src_h"``) that the model's ``profiles`` bound and the backend resolves from the feeds.
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    layout: str

    def spec(self) -> TensorSpec:
        return TensorSpec(self.name, tuple(d if isinstance(d, int) else -1 for d in self.shape),
                          np.dtype(self.dtype))


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest."""

    name: str
    role: str
    description: str
    source: Source
    converter: str
    onnx_sha256: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layout: str
    normalisation: tuple[float, float]  # pixel range the input expects, e.g. (-1.0, 1.0)
    precision: str  # "fp16": reduced precision allowed on the device; "fp32": keep full
    profiles: tuple[dict[str, Any], ...]  # dynamic-shape profiles; empty means static shapes
    licence: str
    # Most ONNX Runtime intra-op threads; 0: the backend's default. Small models run slower on
    # two threads than on one when worker threads may not spin (see BENCHMARKS.md, Models).
    cpu_threads: int = 0

    def onnx_path(self, engines_dir: str | Path) -> Path:
        return onnx_path(engines_dir, self.name)


@dataclass(frozen=True)
class Manifest:
    path: Path
    sources: dict[str, WheelSource]
    models: dict[str, ModelEntry]


def _need(table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in table:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _sha(table: dict[str, Any], key: str, where: str) -> str:
    value = _need(table, key, where, str)
    if not _SHA256.match(value):
        raise ManifestError(f"{where}: {key!r} must be 64 lower-case hex digits, got {value!r}")
    return str(value)


def _tensors(items: Any, where: str) -> tuple[TensorInfo, ...]:
    if not isinstance(items, list) or not items:
        raise ManifestError(f"{where}: must be a non-empty list of tensors")
    out = []
    for n, item in enumerate(items):
        w = f"{where}[{n}]"
        shape = _need(item, "shape", w, list)
        if not all((isinstance(d, int) and not isinstance(d, bool) and d > 0)
                   or (isinstance(d, str) and _SYMBOL.match(d)) for d in shape):
            raise ManifestError(f"{w}: shape must be positive integers or dimension names "
                                f"(letters, digits, _), got {shape!r}")
        out.append(TensorInfo(_need(item, "name", w, str), tuple(shape),
                              _need(item, "dtype", w, str), _need(item, "layout", w, str)))
    return tuple(out)


def _wheel_source(key: str, table: dict[str, Any]) -> WheelSource:
    where = f"sources.{key}"
    kind = _need(table, "kind", where, str)
    if kind != "pypi-wheel":
        raise ManifestError(f"{where}: unknown source kind {kind!r} (known: 'pypi-wheel')")
    requirement = _need(table, "requirement", where, str)
    if requirement.count("==") != 1:
        raise ManifestError(f"{where}: requirement must pin one version, e.g. 'name==1.2.3'")
    return WheelSource(key, requirement, _need(table, "wheel", where, str),
                       _sha(table, "sha256", where), _need(table, "platform", where, str),
                       _need(table, "python_version", where, str),
                       _need(table, "implementation", where, str),
                       _need(table, "licence", where, str))


def _profiles(table: dict[str, Any], where: str, inputs: tuple[TensorInfo, ...]
              ) -> tuple[dict[str, Any], ...]:
    """``profiles = [{ src_h = [min, opt, max], ... }]``: one table per TensorRT optimisation
    profile, a [min, opt, max] per dimension name; every name the inputs use must be bounded."""
    profiles = table.get("profiles", [])
    if not isinstance(profiles, list):
        raise ManifestError(f"{where}: profiles must be a list")
    symbols = {d for t in inputs for d in t.shape if isinstance(d, str)}
    if symbols and not profiles:
        raise ManifestError(f"{where}: inputs have dynamic dimensions {sorted(symbols)} but no "
                            "profiles bound them")
    for n, profile in enumerate(profiles):
        w = f"{where}.profiles[{n}]"
        if not isinstance(profile, dict) or set(profile) != symbols:
            raise ManifestError(f"{w}: must give [min, opt, max] for exactly the dynamic "
                                f"dimensions {sorted(symbols)}")
        for symbol, bounds in profile.items():
            if (not isinstance(bounds, list) or len(bounds) != 3
                    or not all(isinstance(b, int) and b > 0 for b in bounds)
                    or not bounds[0] <= bounds[1] <= bounds[2]):
                raise ManifestError(f"{w}.{symbol}: must be [min, opt, max] positive integers "
                                    f"with min <= opt <= max, got {bounds!r}")
    return tuple(profiles)


def _source(table: dict[str, Any], where: str, sources: dict[str, WheelSource]
            ) -> tuple[Source, str]:
    """(source, converter) of a model entry: a wheel member, a generated graph or a file."""
    src_key = _need(table, "source", where, str)
    if src_key == GENERATED:
        generator = _need(table, "generator", where, str)
        if not re.match(r"^appliance\.effects\.graphs\.[a-z_]+:[a-z_]+$", generator):
            raise ManifestError(f"{where}: generator must be "
                                "'appliance.effects.graphs.<module>:<function>', got "
                                f"{generator!r}")
        return GeneratedSource(generator), "generated"
    if src_key == OPERATOR_FILE:
        return FileSource(Path(_need(table, "path", where, str))), "copy"
    if src_key not in sources:
        raise ManifestError(f"{where}: source {src_key!r} is not defined under [sources] "
                            f"(nor {GENERATED!r} or {OPERATOR_FILE!r})")
    return (ModelSource(sources[src_key], _need(table, "member", where, str),
                        _sha(table, "member_sha256", where)),
            _need(table, "converter", where, str))


def _model(name: str, table: dict[str, Any], sources: dict[str, WheelSource]) -> ModelEntry:
    where = f"models.{name}"
    source, converter = _source(table, where, sources)
    precision = _need(table, "precision", where, str)
    if precision not in PRECISIONS:
        raise ManifestError(f"{where}: precision must be one of {PRECISIONS}, got {precision!r}")
    norm = _need(table, "normalisation", where, list)
    if len(norm) != 2 or not all(isinstance(v, (int, float)) for v in norm):
        raise ManifestError(f"{where}: normalisation must be [low, high], got {norm!r}")
    cpu_threads = table.get("cpu_threads", 0)
    if not isinstance(cpu_threads, int) or isinstance(cpu_threads, bool) or cpu_threads < 0:
        raise ManifestError(f"{where}: cpu_threads must be a whole number >= 0 (0: the "
                            f"backend's default), got {cpu_threads!r}")
    inputs = _tensors(table.get("inputs"), f"{where}.inputs")
    return ModelEntry(
        name=name, role=_need(table, "role", where, str),
        description=str(table.get("description", "")),
        source=source, converter=converter,
        onnx_sha256=_sha(table, "onnx_sha256", where),
        inputs=inputs,
        outputs=_tensors(table.get("outputs"), f"{where}.outputs"),
        layout=_need(table, "layout", where, str),
        normalisation=(float(norm[0]), float(norm[1])), precision=precision,
        profiles=_profiles(table, where, inputs), licence=_need(table, "licence", where, str),
        cpu_threads=cpu_threads)


def onnx_path(engines_dir: str | Path, model: str) -> Path:
    """Where ``ephemera build`` writes a model's ONNX file (and everything reads it)."""
    return Path(engines_dir) / "onnx" / f"{model}.onnx"


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate the manifest; every problem names the key it is about."""
    p = Path(path) if path is not None else DEFAULT_MANIFEST
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"model manifest {p} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"model manifest {p} is not valid TOML: {exc}") from None
    sources = {k: _wheel_source(k, v) for k, v in data.get("sources", {}).items()}
    models = {k: _model(k, v, sources) for k, v in data.get("models", {}).items()}
    if not models:
        raise ManifestError(f"model manifest {p} lists no models")
    return Manifest(p, sources, models)


def repin_onnx_sha256(path: Path, name: str, sha256: str) -> None:
    """Rewrite one model's onnx_sha256 in place (for developers, after a converter change)."""
    text = path.read_text(encoding="utf-8")
    section = re.search(rf"^\[models\.{re.escape(name)}\]\n(.*?)(?=^\[models\.|\Z)", text,
                        re.S | re.M)
    if section is None:
        raise ManifestError(f"{path}: no [models.{name}] section")
    body = re.sub(r'^onnx_sha256 = "[0-9a-f]*"', f'onnx_sha256 = "{sha256}"', section.group(1),
                  count=1, flags=re.M)
    write_atomic(path, (text[:section.start(1)] + body + text[section.end(1):]).encode("utf-8"))
