"""Run one effect on photo files into a folder: ``ephemera run`` and ``make gallery``.

The same steps as the service, minus HTTP and the store: each photo is read into a secure
buffer, decoded (EXIF orientation applied, metadata dropped) and gated for the effect; the
effect runs with an ``EffectJobRun`` whose sink writes each output to the folder as it is
emitted. The folder must be on tmpfs or ramfs unless the caller allows a disk (the outputs
are pictures of people). Every buffer is wiped before ``run_effect`` returns.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

from appliance.errors import UserFacingError
from appliance.jobs.effect_jobs import models_unavailable
from appliance.jobs.effect_run import EffectJobRun, Photo, segmenter
from appliance.jobs.photos import FaceRule, gate_faces
from appliance.media.decode import ImageLimits, decode_image
from appliance.models.backend import BackendError
from appliance.secure.buffers import REGISTRY
from appliance.secure.fs import filesystem_type, is_ram_filesystem

_OPEN_OUTPUT = os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_output_folder(folder: Path, allow_disk: bool) -> None:
    """Refuse a folder on persistent storage (judged by its nearest existing ancestor)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not allow_disk and not is_ram_filesystem(probe):
        raise UserFacingError(
            "output_on_disk", f"{folder} is on {filesystem_type(probe)}, persistent storage: "
            "the outputs are pictures of people and would outlive this command.", status=400,
            remedy="Write to a tmpfs folder (e.g. under /dev/shm) or pass --allow-disk-output "
                   "if the photos are yours to keep.")


def read_photo(path: Path, owner: str, limits: ImageLimits) -> Any:
    """Read and decode one photo file into secure buffers of ``owner``."""
    if not path.is_file():
        raise UserFacingError("no_such_file", f"There is no photo at {path}.", status=400,
                              remedy="Check the path given to --photo.")
    size = min(path.stat().st_size, limits.max_bytes + 1)  # one byte over is refused by size
    if size == 0:
        raise UserFacingError("empty_upload", f"{path} is empty.", status=400,
                              remedy="Give a JPEG, PNG or WebP photo.")
    raw = REGISTRY.allocate(size, owner=owner, label="photo-file")
    try:
        with path.open("rb", buffering=0) as handle:
            handle.readinto(raw.memoryview())
        with raw.memoryview() as data:
            _buffer, bgr = decode_image(data, owner, limits)
    finally:
        raw.release()
    return bgr


def run_effect(effect: Any, photo_paths: list[Path], raw_params: dict[str, object],
               folder: Path, pipeline: Any, *, allow_disk: bool = False,
               limits: ImageLimits | None = None) -> dict[str, Any]:
    """Run ``effect`` and write its outputs to ``folder``; returns the JSON summary."""
    started = time.monotonic()
    effect.check_photo_count(len(photo_paths))
    params = effect.validate_params(raw_params)
    per_photo = effect.faces_per_photo(params, len(photo_paths))
    check_output_folder(folder, allow_disk)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserFacingError("bad_output_folder", f"Cannot use {folder} for the outputs: "
                              f"{exc.strerror}.", status=400,
                              remedy="Give --out a folder (or a new name) you may write.") from None
    owner = f"run-{secrets.token_hex(8)}"
    rule = FaceRule(frozenset({per_photo}), "eyes_open" in effect.gates)
    stages: dict[str, float] = {}
    written: list[dict[str, Any]] = []

    def timed(stage: str, since: float) -> None:
        stages[stage] = round(stages.get(stage, 0.0) + time.monotonic() - since, 4)

    def into_folder(name: str, data: memoryview, media_type: str) -> None:
        path = folder / name
        fd = os.open(path, _OPEN_OUTPUT, 0o600)
        try:
            view, done = data, 0
            while done < view.nbytes:
                done += os.write(fd, view[done:])
        finally:
            os.close(fd)
        written.append({"name": name, "path": str(path), "media_type": media_type,
                        "bytes": data.nbytes,
                        "seconds": round(time.monotonic() - started, 4)})

    try:
        photos = []
        for path in photo_paths:
            since = time.monotonic()
            bgr = read_photo(path, owner, limits or ImageLimits())
            timed("decode", since)
            since = time.monotonic()
            faces = gate_faces(pipeline, bgr, owner, rule)
            timed("faces", since)
            photos.append(Photo(bgr, faces, segment=segmenter(pipeline, owner)))
        run = EffectJobRun(owner, photos, params, pipeline.models, pipeline, into_folder)
        effect.run(run)
        run.finish()
        missing = [o.name for o in effect.outputs_with(params) if o.name not in run.outputs]
        if missing:
            raise RuntimeError(f"effect {effect.key} did not emit {', '.join(missing)}")
        stages.update({name: round(seconds, 4) for name, seconds in run.stages.items()})
    except BackendError as exc:
        raise models_unavailable(exc) from None
    finally:
        REGISTRY.release_owner(owner)
        with contextlib.suppress(Exception):
            pipeline.zeroise()
    return {
        "effect": effect.key,
        "params": params,
        "photos": [{"path": str(path), "width": p.bgr.shape[1], "height": p.bgr.shape[0],
                    "faces": len(p.faces)} for path, p in zip(photo_paths, photos, strict=True)],
        "outputs": written,
        "stages_s": stages,
        "total_s": round(time.monotonic() - started, 4),
    }
