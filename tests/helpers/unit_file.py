"""Read a systemd unit file the way systemd does, enough to start its command by hand.

Only what the tests need: continuation lines, repeated keys (in order), an empty assignment
resetting a list, and ``Environment=`` with its quoting (systemd.exec(5)).
"""

from __future__ import annotations

import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}, an empty value clearing what came before."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"{path}: cannot parse {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        if value == "":
            current[key] = []
        else:
            current.setdefault(key, []).append(value)
    return sections


def unit_environment(path: Path) -> dict[str, str]:
    """The variables the unit's ``Environment=`` lines set (later lines win, as in systemd)."""
    env: dict[str, str] = {}
    for line in parse_unit(path).get("Service", {}).get("Environment", []):
        for item in shlex.split(line):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def service_value(path: Path, key: str) -> str | None:
    values = parse_unit(path).get("Service", {}).get(key, [])
    return values[-1] if values else None
