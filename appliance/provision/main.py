"""``provisioning/provision`` (``python -m appliance.provision``): the technician's one command.

    provision [--config booth.toml] [--dry-run] [--root DIR] [--allow-non-jetson]

Exit codes: 0 done (or nothing to do), 1 a step failed, 2 a bad provisioning file or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.config import ConfigError, load_config
from appliance.provision import platform
from appliance.provision.booth import booth_steps, gpu_nodes
from appliance.provision.engine import Context, ProvisionError, carry_out
from appliance.provision.live import carry_out_live
from appliance.provision.settings import load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision", description="Turn this machine (or a scratch root) into a hardened "
        "Ephemera booth. Idempotent: a second run changes nothing.")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="provisioning file (see provisioning/booth.example.toml)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every change it would make and change nothing")
    parser.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                        help="apply everything under DIR instead of / (tests, images)")
    parser.add_argument("--allow-non-jetson", action="store_true",
                        help="provision the live system even when it is not a Jetson")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"provision: bad provisioning file: {exc}", file=sys.stderr)
        return 2
    root = args.root.resolve()
    if not root.is_dir():
        print(f"provision: --root {root} is not a directory", file=sys.stderr)
        return 2
    ctx = Context(root=root, dry_run=args.dry_run)
    print(f"provisioning {'(dry run) ' if ctx.dry_run else ''}booth {settings.booth_name!r} "
          f"under {root}")
    found = platform.detect(ctx, gpu_nodes(ctx))
    for line in platform.report(ctx, found):
        print(line)
    if ctx.live and not found.jetson and not args.allow_non_jetson:
        print("provision: this is not a Jetson; pass --allow-non-jetson to provision it "
              "anyway, or --root DIR for a scratch root", file=sys.stderr)
        return 1
    if ctx.live and not ctx.dry_run and os.geteuid() != 0:
        print("provision: run as root (sudo) to provision this machine", file=sys.stderr)
        return 1
    try:
        changes = carry_out(booth_steps(ctx, settings), ctx)
        if not ctx.dry_run:
            # What the service will read must itself be a valid configuration.
            load_config(ctx.path("/etc/ephemera/ephemera.toml"), env={})
        live = carry_out_live(ctx, settings, bool(changes))
    except (ProvisionError, ConfigError) as exc:
        print(f"provision: failed: {exc}", file=sys.stderr)
        return 1
    for line in live:
        print(line)
    print("\nsummary:")
    if not changes:
        print("  no changes: this booth is already provisioned as configured")
    else:
        verb = "would make" if ctx.dry_run else "made"
        print(f"  {verb} {len(changes)} change(s)")
    print(f"  kiosk: http://127.0.0.1:{settings.kiosk_port}/ on the touchscreen")
    print(f"  LAN: {settings.local_name} ({settings.lan_address}), allowed "
          f"{', '.join(settings.allowed_cidrs)}")
    if settings.wifi.enabled:
        print(f"  Wi-Fi: {settings.wifi.ssid!r} (WPA2/WPA3), QR in /etc/ephemera/wifi.json")
    for warning in ctx.warnings:
        print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
