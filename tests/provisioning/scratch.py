"""A scratch root that looks like a fresh JetPack install to provisioning (users, fstab, units).

The host's own systemd unit directory is copied in so ``systemctl --root`` and
``systemd-analyze verify --root`` see the targets and nftables.service a booth has.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "provisioning" / "provision"
EXAMPLE = REPO / "provisioning" / "booth.example.toml"
HOST_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                   if p.is_dir()), None)


def make_root(base: Path) -> Path:
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nlp:x:7:\nvideo:x:44:\ninput:x:105:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\n")
    for name in ("shadow", "gshadow"):
        (root / "etc" / name).chmod(0o640)
    (root / "etc/fstab").write_text("UUID=1234 / ext4 defaults 0 1\n"
                                    "/swapfile none swap sw 0 0\n")
    (root / "boot/extlinux").mkdir(parents=True)
    (root / "boot/extlinux/extlinux.conf").write_text(
        "TIMEOUT 30\nDEFAULT primary\n\nLABEL primary\n      MENU LABEL primary kernel\n"
        "      LINUX /boot/Image\n      APPEND ${cbootargs} root=/dev/mmcblk0p1 rw\n")
    if HOST_UNITS is not None:
        shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    return root


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


BOOTH = {
    "booth": {"name": "booth-07"},
    "lan": {"interface": "wlan0", "address": "192.168.44.1", "prefix": 24},
    "wifi": {"enabled": True, "ssid": "Ephemera; booth:07", "password": "per-event-secret-7",
             "country": "DE", "channel": 11},
    "printing": {"enabled": True},
    "admin": {"pin": "246810"},
}


def booth_file(base: Path, tables: dict[str, dict[str, object]] | None = None,
               name: str = "booth.toml") -> Path:
    """A provisioning file (default: ``BOOTH``, Wi-Fi and printing on)."""
    tables = BOOTH if tables is None else tables
    lines = []
    for table, values in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path = base / name
    path.write_text("\n".join(lines))
    return path


def provision(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROVISION), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300,
                          check=False)


def tree(root: Path) -> dict[str, tuple[int, int, int, bytes | str]]:
    """Every path under root: (mode, uid, gid, content or link target): to compare runs."""
    out: dict[str, tuple[int, int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            body: bytes | str = os.readlink(path)
        elif path.is_file():
            body = path.read_bytes()
        else:
            body = ""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, body)
    return out
