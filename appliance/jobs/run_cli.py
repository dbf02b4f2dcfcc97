"""``ephemera run EFFECT --photo PATH --out DIR``: one effect on photo files, from a shell.

For operators and developers: try an effect without the screens, time it on a device, or make
pictures for a person to look at. Each effect in the registry is a sub-command whose help lists
its photos, faces, parameters and outputs, so a new effect module needs no change here. The
outputs go to DIR, which must be on tmpfs or ramfs unless ``--allow-disk-output`` is given; a
JSON summary (files, sizes, stage timings) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.errors import UserFacingError
from appliance.models.backend import BackendError


def effect_help(effect: Any) -> str:
    low, high = effect.photos
    count = f"{low}" if low == high else f"{low} to {high}"
    lines = [effect.summary, "", f"photos: {count} (--photo PATH, in order); faces in all: "
             f"{effect.faces}"]
    if effect.gates:
        lines.append("extra gates: " + ", ".join(sorted(effect.gates)))
    if effect.params:
        lines += ["", "parameters (--param NAME=VALUE):"]
        lines += ["  " + line for line in effect.params_help().splitlines()]
    if effect.outputs:
        lines += ["", "outputs:"] + [f"  {o.name} ({o.media_type})" for o in effect.outputs]
    return "\n".join(lines)


def add_verb(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run an effect on photo files into a tmpfs folder (JSON summary)",
        description="Run one effect on photos and write its outputs to a folder. "
                    "`ephemera run EFFECT --help` lists the effect's parameters.")
    effects_parsers = parser.add_subparsers(dest="effect", metavar="EFFECT")
    try:
        from appliance.effects.registry import effects

        registered = effects()
    except Exception as exc:  # a broken effect module must not break every other verb
        problem = f"{type(exc).__name__}: {exc}"
        parser.set_defaults(func=lambda _args: _registry_broken(problem))
        return
    for key, effect in sorted(registered.items()):
        sub = effects_parsers.add_parser(
            key, help=effect.title, description=effect_help(effect),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--photo", action="append", required=True, metavar="PATH",
                         help="a JPEG, PNG or WebP photo (repeat for effects taking several)")
        sub.add_argument("--out", required=True, metavar="DIR",
                         help="folder for the outputs (tmpfs or ramfs; created if missing)")
        sub.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                         help="an effect parameter (see above); repeat for several")
        sub.add_argument("--allow-disk-output", action="store_true",
                         help="allow DIR on persistent storage (only for photos you may keep)")
        sub.set_defaults(func=run)
    parser.set_defaults(func=lambda _args: _no_effect(parser))


def _registry_broken(problem: str) -> int:
    print(f"ephemera run: the effects could not be loaded: {problem}", file=sys.stderr)
    return 1


def _no_effect(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.effects.registry import get_effect
    from appliance.jobs.local_run import run_effect
    from appliance.models.loader import ModelSet
    from appliance.vision.pipeline import FacePipeline

    models = None
    try:
        effect = get_effect(args.effect)
        params = effect.params_from_pairs(args.param)
        models = ModelSet(load_config(args.config))
        summary = run_effect(effect, [Path(p) for p in args.photo], params, Path(args.out),
                             FacePipeline(models), allow_disk=args.allow_disk_output)
    except UserFacingError as exc:
        print(f"ephemera run: {exc.code}: {exc.message} {exc.remedy}".rstrip(), file=sys.stderr)
        return 2 if exc.status == 400 and exc.code in USAGE_ERRORS else 1
    except BackendError as exc:
        print(f"ephemera run: {exc}", file=sys.stderr)
        return 1
    finally:
        if models is not None:
            models.close()
    print(json.dumps(summary, indent=2))
    return 0


# Errors in how the command was called (exit 2) rather than in the photos (exit 1).
USAGE_ERRORS = frozenset({"bad_param", "unknown_effect", "wrong_photo_count", "output_on_disk",
                          "no_such_file", "bad_output_folder"})
