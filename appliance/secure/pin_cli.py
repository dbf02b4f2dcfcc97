"""`ephemera admin-pin`: set the operator PIN by writing its scrypt hash as ``admin.pin_hash``.

The PIN itself is never written anywhere: it is read from the terminal (twice) or from standard
input (``--stdin``, for provisioning), hashed, and only the hash goes into the configuration file.
The rest of the file is kept line for line, comments included.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from appliance.config import ConfigError, config_path_from, load_config
from appliance.secure.pin import PinError, check_pin, hash_pin

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")


def set_toml_string(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``[section] key = "value"`` set, every other line unchanged."""
    if any(c in value for c in '"\\\n'):
        raise ValueError("value must not contain quotes, backslashes or newlines")
    line = f'{key} = "{value}"'
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines)
                  if (m := _HEADER.match(ln)) and m.group(1) == section), None)
    if start is None:
        body = text.rstrip("\n")
        return (body + "\n\n" if body else "") + f"[{section}]\n{line}\n"
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start + 1, end):
        if key_re.match(lines[i]):
            lines[i] = line
            break
    else:
        lines.insert(start + 1, line)
    return "\n".join(lines) + "\n"


def write_keeping_mode(path: Path, text: str) -> None:
    """Replace ``path`` atomically, keeping its mode and owner (a new file gets 0640)."""
    try:
        st = path.stat()
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = 0o640, None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_pin(from_stdin: bool) -> str:
    if from_stdin:
        return check_pin(sys.stdin.readline().strip())
    first = check_pin(getpass.getpass("New admin PIN (6-12 digits): "))
    if getpass.getpass("Repeat the PIN: ") != first:
        raise PinError("the two PINs differ; nothing was changed")
    return first


def _cmd_admin_pin(args: argparse.Namespace) -> int:
    path = config_path_from(os.environ, args.config)
    if path is None:
        raise ConfigError("no configuration file to write admin.pin_hash to: give --config PATH "
                          "(on a booth it is /etc/ephemera/ephemera.toml)")
    try:
        pin = _read_pin(args.stdin)
    except PinError as exc:
        print(f"ephemera: {exc}", file=sys.stderr)
        return 2
    old = path.read_text() if path.exists() else ""
    write_keeping_mode(path, set_toml_string(old, "admin", "pin_hash", hash_pin(pin)))
    load_config(path)  # the file must still be a valid configuration
    print(f"admin.pin_hash written to {path} (the PIN itself is stored nowhere)")
    return 0


def add_verb(verbs: Any) -> None:
    parser = verbs.add_parser("admin-pin", help="set the operator PIN (stores only its hash)")
    parser.add_argument("--stdin", action="store_true",
                        help="read the PIN from the first line of standard input instead of "
                             "asking twice on the terminal")
    parser.set_defaults(func=_cmd_admin_pin)
