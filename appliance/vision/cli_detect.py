"""``ephemera detect IMAGE``: what the face pipeline sees in one photo.

For technicians and developers: check a camera's framing, see why a guest's photo was refused,
or compare a device's output with a laptop's. The image is read into a secure buffer, decoded
with EXIF orientation applied, and nothing but the JSON (and the ``--draw`` picture, when asked
for) leaves the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.errors import UserFacingError
from appliance.models.backend import BackendError
from appliance.secure.buffers import REGISTRY, use_memfd_secret

SCHEMA_VERSION = 1


def add_verb(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detect", help="find faces in a photo (boxes, keypoints, optional 468-point mesh)",
        description="Run the face pipeline on one image and report what it found. Faces are "
                    "listed largest first.")
    parser.add_argument("image", metavar="IMAGE", help="a JPEG, PNG or WebP photo")
    parser.add_argument("--json", action="store_true", help="print JSON (schema in the README)")
    parser.add_argument("--mesh", action="store_true",
                        help="also run the 468-point mesh (drops faces it does not believe in)")
    parser.add_argument("--draw", metavar="OUT.png",
                        help="write a PNG with boxes, keypoints (and mesh) drawn on the photo")
    parser.set_defaults(func=run)


def load_image(path: Path, owner: str) -> npt.NDArray[np.uint8]:
    """Read and decode into secure buffers of ``owner`` (EXIF orientation applied, limits
    and format checks as for an upload)."""
    from appliance.media.decode import ImageLimits, decode_image

    # Past the upload limit one extra byte is enough for decode_image to refuse it by size.
    size = min(path.stat().st_size, ImageLimits().max_bytes + 1)
    if size == 0:
        raise UserFacingError("not_an_image", f"{path} is empty.", status=415)
    raw = REGISTRY.allocate(size, owner=owner, label="detect-file")
    with path.open("rb", buffering=0) as handle:
        handle.readinto(raw.memoryview())
    try:
        _buffer, bgr = decode_image(raw.memoryview(), owner)
    finally:
        raw.release()
    return bgr


def run(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.models.loader import ModelSet
    from appliance.vision.pipeline import FacePipeline, draw_faces

    owner = f"cli-detect-{uuid.uuid4().hex}"
    path = Path(args.image)
    cfg = load_config(args.config)
    use_memfd_secret(cfg.secure.memfd_secret)
    models = ModelSet(cfg)
    pipeline = FacePipeline(models)
    try:
        if not path.is_file():
            print(f"ephemera detect: no such file: {path}", file=sys.stderr)
            return 2
        bgr = load_image(path, owner)
        faces = pipeline.detect(bgr, owner, mesh=args.mesh)
        if args.draw:
            write_png(Path(args.draw), draw_faces(bgr, faces, owner), owner)
        height, width = bgr.shape[:2]
        if args.json:
            print(json.dumps({"schema": SCHEMA_VERSION, "image": {"width": width,
                                                                  "height": height},
                              "faces": [f.to_json(mesh=args.mesh) for f in faces]}))
        else:
            print(f"{path.name}: {width} x {height}, {len(faces)} face(s)")
            for index, face in enumerate(faces, 1):
                x0, y0, x1, y1 = face.box
                line = (f"  {index}: box ({x0:.0f}, {y0:.0f}) - ({x1:.0f}, {y1:.0f}), "
                        f"score {face.score:.2f}")
                if face.presence is not None:
                    line += f", mesh presence {face.presence:.2f}"
                print(line)
        return 0
    except UserFacingError as exc:
        print(f"ephemera detect: {exc.code}: {exc.message} {exc.remedy}".rstrip(),
              file=sys.stderr)
        return 1
    except BackendError as exc:  # e.g. models not built: the message says what to run
        print(f"ephemera detect: {exc}", file=sys.stderr)
        return 1
    finally:
        REGISTRY.release_owner(owner)
        pipeline.zeroise()
        models.close()


def write_png(path: Path, bgr: npt.NDArray[np.uint8], owner: str) -> None:
    """Encode without metadata into a secure buffer, write, release (wiped)."""
    from appliance.media.encode import encode_image

    buffer, data = encode_image(bgr, "png", owner)
    try:
        with path.open("wb") as handle:
            handle.write(data)
    finally:
        buffer.release()
