"""``ephemera build``: pinned wheel -> verified .tflite -> deterministic ONNX (-> TensorRT).

Why one verb: provisioning a booth is "run this once"; it must be resumable (a model already
built and matching its pin is skipped), work offline after one fetch, and say plainly what it did
and what failed, with the fix. Every artefact is checked against the manifest: the wheel, each
member, and the converted ONNX file, whose sha256 is pinned because conversion is deterministic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.config import Config, load_config
from appliance.models.atomic import write_atomic
from appliance.models.engines import backend_kind
from appliance.models.errors import HashMismatchError, ModelSupplyError
from appliance.models.fetch import ensure_wheel, extract_member
from appliance.models.generated import generate
from appliance.models.integrity import sha256_file
from appliance.models.manifest import (
    FileSource,
    GeneratedSource,
    Manifest,
    ModelEntry,
    ModelSource,
    load_manifest,
    repin_onnx_sha256,
)
from appliance.models.tflite_to_onnx import convert_tflite, serialize


def _say(line: str) -> None:
    print(line, flush=True)


def onnx_state(entry: ModelEntry, engines_dir: Path) -> str:
    path = entry.onnx_path(engines_dir)
    if not path.exists():
        return "not built"
    return "built" if sha256_file(path) == entry.onnx_sha256 else "MISMATCH (rebuild)"


def _write_pinned(entry: ModelEntry, data: bytes, engines_dir: Path, what: str,
                  remedy: str, *, repin: bool) -> Path:
    """Write a model's ONNX bytes atomically, only if they match the pinned sha256."""
    import hashlib

    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.onnx_sha256 and not repin:
        raise HashMismatchError(
            f"{what} {entry.name}: sha256 {actual} does not match the pinned "
            f"{entry.onnx_sha256}", remedy=remedy)
    return write_atomic(entry.onnx_path(engines_dir), data)


def convert_model(entry: ModelEntry, tflite_path: Path, engines_dir: Path, *,
                  repin: bool = False) -> Path:
    """Convert one model and write it atomically only if its hash matches the pin."""
    return _write_pinned(
        entry, serialize(convert_tflite(tflite_path.read_bytes(), entry.name)), engines_dir,
        "converted", "the converter's output changed (a different onnx/numpy version or "
        "converter code). Developers: check parity, then `ephemera build --repin`.", repin=repin)


def generate_model(entry: ModelEntry, engines_dir: Path, *, repin: bool = False) -> Path:
    """Generate one pixel graph (``source = "generated"``) and write it if it matches its pin."""
    assert isinstance(entry.source, GeneratedSource)
    return _write_pinned(
        entry, generate(entry.source.generator), engines_dir, "generated",
        "the graph's builder changed (its code or the onnx version). Developers: check its "
        "tests against the NumPy/OpenCV reference, then `ephemera build --repin`.", repin=repin)


def copy_operator_model(entry: ModelEntry, engines_dir: Path) -> Path:
    """Copy an operator-supplied ONNX file (``source = "file"``) in, if it matches its pin."""
    assert isinstance(entry.source, FileSource)
    try:
        data = entry.source.path.read_bytes()
    except OSError as exc:
        raise ModelSupplyError(f"{entry.name}: cannot read {entry.source.path}: "
                               f"{exc.strerror or exc}",
                               remedy="put the ONNX file there or correct `path` in "
                                      "engines/models.toml") from None
    return _write_pinned(entry, data, engines_dir, "operator model",
                         "the file is not the one whose sha256 the manifest pins; put the "
                         "right file there or pin this one (`sha256sum FILE`)", repin=False)


def build_tensorrt_engines(manifest: Manifest, engines_dir: Path, *, force: bool,
                           names: list[str] | None = None, dla_core: int | None = None) -> None:
    """Hook into the engine step (``appliance.models.tensorrt_build``): TensorRT engines where
    TensorRT is importable, else a check that each model loads in ONNX Runtime."""
    from appliance.models.backend import ModelIntegrityError
    from appliance.models.tensorrt_build import EngineBuildError, build_engines

    entries = [manifest.models[name] for name in (names or list(manifest.models))]
    results = build_engines(entries, engines_dir, force=force, dla_core=dla_core, progress=_say)
    # An engine that failed leaves its model on ONNX Runtime: worth a line, not a failed build.
    # A model that cannot load at all, or fails its hash, fails the build.
    fatal = [r for r in results if r.status == "failed" and (
        isinstance(r.error, ModelIntegrityError) or not isinstance(r.error, EngineBuildError))]
    if fatal:
        raise ModelSupplyError(
            "not ready: " + "; ".join(f"{r.model}: {r.detail}" for r in fatal),
            remedy="rebuild with `ephemera build --force`")


def build_face_mesh_triangles(manifest: Manifest, engines_dir: Path, wheels: dict[str, Path],
                              *, from_wheel: Path | None, offline: bool, force: bool) -> None:
    """The face mesh's triangle list, read from the same pinned wheel (baby predictor)."""
    from appliance.models import tessellation

    mesh = manifest.models.get("face_landmark")
    if mesh is None or not isinstance(mesh.source, ModelSource):
        return  # a manifest without MediaPipe's face mesh: no triangles to take from it
    if not force and tessellation.is_built(engines_dir):
        return
    source = mesh.source.wheel
    wheel = wheels.get(source.key) or ensure_wheel(source, engines_dir / "cache",
                                                   from_wheel=from_wheel, offline=offline,
                                                   log=_say)
    out = tessellation.write_from_wheel(wheel, engines_dir)
    _say(f"[face_mesh_triangles] {tessellation.MEMBER} -> {out} (sha256 ok)")


def build(manifest: Manifest, engines_dir: Path, *, from_wheel: Path | None = None,
          offline: bool = False, force: bool = False, repin: bool = False,
          only: list[str] | None = None, dla_core: int | None = None) -> list[Path]:
    """Build every model (or ``only`` those) of the manifest; returns the ONNX paths."""
    names = only or list(manifest.models)
    unknown = [n for n in names if n not in manifest.models]
    if unknown:
        raise ModelSupplyError(f"unknown model(s): {', '.join(unknown)}",
                               remedy=f"known: {', '.join(manifest.models)}")
    cache = engines_dir / "cache"
    built: list[Path] = []
    todo: list[ModelEntry] = []
    for name in names:
        entry = manifest.models[name]
        if not force and not repin and onnx_state(entry, engines_dir) == "built":
            _say(f"[{name}] up to date ({entry.onnx_path(engines_dir)})")
            built.append(entry.onnx_path(engines_dir))
        else:
            todo.append(entry)
    wheels: dict[str, Path] = {}
    for entry in todo:
        if isinstance(entry.source, GeneratedSource):
            out = generate_model(entry, engines_dir, repin=repin)
        elif isinstance(entry.source, FileSource):
            out = copy_operator_model(entry, engines_dir)
        else:
            src = entry.source.wheel
            if src.key not in wheels:
                wheels[src.key] = ensure_wheel(src, cache, from_wheel=from_wheel,
                                               offline=offline, log=_say)
            tfl = extract_member(wheels[src.key], entry.source, cache / "tflite", log=_say)
            out = convert_model(entry, tfl, engines_dir, repin=repin)
        digest = sha256_file(out)
        if repin and digest != entry.onnx_sha256:
            repin_onnx_sha256(manifest.path, entry.name, digest)
            _say(f"[{entry.name}] repinned onnx_sha256 = {digest} in {manifest.path}")
        verb = "converted" if isinstance(entry.source, ModelSource) else (
            "generated" if isinstance(entry.source, GeneratedSource) else "copied")
        _say(f"[{entry.name}] {verb} -> {out} (sha256 ok)")
        built.append(out)
    build_face_mesh_triangles(manifest, engines_dir, wheels, from_wheel=from_wheel,
                              offline=offline, force=force)
    build_tensorrt_engines(manifest, engines_dir, force=force, names=names, dla_core=dla_core)
    return built


def format_list(manifest: Manifest, cfg: Config) -> str:
    """One row per model; BACKEND is what the loader will open it on (``backend_kind``)."""
    engines_dir = Path(cfg.models.engines_dir)
    rows = [("MODEL", "ROLE", "SOURCE", "ONNX SHA256", "BACKEND", "STATE")]
    for entry in manifest.models.values():
        rows.append((entry.name, entry.role, entry.source.describe(), entry.onnx_sha256[:16],
                     backend_kind(cfg, entry.name, manifest), onnx_state(entry, engines_dir)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
                     for r in rows)


def _cmd_build(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engines_dir = Path(cfg.models.engines_dir)
    try:
        manifest = load_manifest(args.manifest)
        if args.list:
            print(format_list(manifest, cfg))
            return 0
        _say(f"ephemera build: {len(manifest.models)} models from {manifest.path} into "
             f"{engines_dir}")
        build(manifest, engines_dir, from_wheel=args.from_wheel, offline=args.offline,
              force=args.force, repin=args.repin, only=args.models or None,
              dla_core=cfg.models.dla)
    except ModelSupplyError as exc:
        print(f"ephemera build: {exc}", file=sys.stderr)
        if exc.remedy:
            print(f"  fix: {exc.remedy}", file=sys.stderr)
        return 1
    _say("ephemera build: done")
    return 0


def add_verb(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build", help="fetch, verify and convert the models (engines/models.toml)",
        description="Fetch the pinned MediaPipe wheel (once; cached in ENGINES_DIR/cache), "
                    "verify every sha256, convert each model to ONNX and, where TensorRT is "
                    "available, build the engines. Resumable: up-to-date models are skipped.")
    p.add_argument("models", nargs="*", metavar="MODEL", help="only these models (default: all)")
    p.add_argument("--list", action="store_true",
                   help="list each model, its source, hash, backend and state; build nothing")
    p.add_argument("--from-wheel", type=Path, metavar="PATH",
                   help="use this copy of the pinned wheel (air-gapped provisioning)")
    p.add_argument("--offline", action="store_true",
                   help="never download: fail unless the wheel is cached or given")
    p.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    p.add_argument("--repin", action="store_true",
                   help="developers: record the converted files' sha256 in the manifest")
    p.add_argument("--manifest", type=Path, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_build)
