"""`ephemera purge`: overwrite and delete everything in the RAM store now.

For an operator at the end of an event or a technician before shipping a box. A running service
loses the jobs whose blobs disappear (their downloads fail); that is the point.
"""

from __future__ import annotations

import argparse
from typing import Any

from appliance.audit import audit
from appliance.config import load_config
from appliance.secure.store import RamStore, StoreError


def _cmd_purge(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    try:
        store = RamStore.from_config(cfg)
    except StoreError as exc:
        print(f"ephemera purge: {exc}")
        return 1
    removed = store.purge()
    audit("store_purged", files=removed, by="cli")
    print(f"purged {store.path}: {removed} file(s) overwritten and deleted")
    return 0


def add_verb(subparsers: Any) -> None:
    purge = subparsers.add_parser(
        "purge", help="overwrite and delete everything in the RAM store now")
    purge.set_defaults(func=_cmd_purge)
