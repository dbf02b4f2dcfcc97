"""The ``ephemera`` command: thin parsing around the package's real work.

Each verb lives with the code it drives and registers itself through ``add_verb(subparsers)``;
this module only lists those modules, loads the configuration and maps errors to exit codes.
Exit codes: 0 success, 1 the operation failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from appliance import __version__
from appliance.config import ConfigError, describe, load_config

# Modules that contribute verbs: each has ``add_verb(subparsers)``.
VERB_MODULES: list[str] = [
    "appliance.models.build",
    "appliance.secure.purge_cli",
    "appliance.secure.pin_cli",
    "appliance.vision.cli_detect",
    "appliance.jobs.run_cli",
    "appliance.web.receipts",
]

DESCRIPTION = """\
Ephemera: the photo booth that forgets.
Guests' photos live only in RAM, encrypted, and are wiped seconds after they are done.

Common tasks:
  ephemera serve            start the booth (kiosk on http://127.0.0.1:8080)
  ephemera doctor           check this machine: one line per check, with the fix
  ephemera run EFFECT --photo PATH --out /dev/shm/DIR
                            try an effect on a photo (ephemera run --help lists them)
  ephemera config           show the effective configuration and where it came from
"""


def _cmd_serve(args: argparse.Namespace) -> int:
    from appliance.web.server import serve

    return serve(load_config(args.config))


def _cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.doctor import format_results, run_checks

    cfg = load_config(args.config)
    results = run_checks(cfg)
    print(format_results(results))
    failed = [name for name, r in results if not r.ok and not r.warning]
    print(f"\n{len(results) - len(failed)} of {len(results)} checks passed"
          + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _cmd_config(args: argparse.Namespace) -> int:
    if args.defaults:
        for key, default, help_text in describe():
            print(f"{key} = {default!r}\n    {help_text}")
        return 0
    cfg = load_config(args.config)
    for key, _default, _help in describe():
        value: object = cfg
        for part in key.split("."):
            value = getattr(value, part)
        print(f"{key} = {value!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ephemera", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ephemera {__version__}")
    parser.add_argument("--config", metavar="PATH",
                        help="configuration file (default: $EPHEMERA_CONFIG, then "
                             "/etc/ephemera/ephemera.toml, then built-in development defaults)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    serve = verbs.add_parser("serve", help="start the web service (kiosk, LAN, admin)")
    serve.set_defaults(func=_cmd_serve)

    doctor = verbs.add_parser("doctor", help="check this machine; prints a remedy for each failure")
    doctor.set_defaults(func=_cmd_doctor)

    config = verbs.add_parser("config", help="print the effective configuration")
    config.add_argument("--defaults", action="store_true",
                        help="print every setting with its default and meaning instead")
    config.set_defaults(func=_cmd_config)

    for module in VERB_MODULES:
        importlib.import_module(module).add_verb(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"ephemera: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
