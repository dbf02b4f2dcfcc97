"""`ephemera doctor`'s printer line: the printer's state, and for a local CUPS queue whether
CUPS would keep a guest's print (job files, history, a spool on disk). Registered with @check."""

from __future__ import annotations

import ctypes
from pathlib import Path
from urllib.parse import urlsplit

from appliance.config import Config
from appliance.doctor import CheckResult, check

TMPFS_MAGIC, RAMFS_MAGIC = 0x01021994, 0x858458F6
CUPSD_CONF = Path("/etc/cups/cupsd.conf")
CUPS_FILES_CONF = Path("/etc/cups/cups-files.conf")


def _on_tmpfs(path: str) -> bool:
    class Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.statfs.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    result = Statfs()
    if libc.statfs(path.encode(), ctypes.byref(result)) != 0:
        return False
    return result.f_type in (TMPFS_MAGIC, RAMFS_MAGIC)


def _directives(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and not words[0].startswith(("#", "<")):
            values[words[0].lower()] = words[1].strip()
    return values


def cups_problems(cupsd: Path = CUPSD_CONF, files: Path = CUPS_FILES_CONF) -> list[str]:
    """What in a CUPS configuration would keep a guest's print on disk."""
    problems = []
    main = _directives(cupsd) if cupsd.is_file() else {}
    for key in ("preservejobfiles", "preservejobhistory"):
        if main.get(key, "").lower() not in ("no", "off", "false"):
            problems.append(f"{cupsd}: {key} is not No")
    where = _directives(files) if files.is_file() else {}
    for key, default in (("requestroot", "/var/spool/cups"), ("tempdir", "/var/spool/cups/tmp")):
        path = where.get(key, default)
        if not _on_tmpfs(path):
            problems.append(f"{files}: {key} {path} is not on tmpfs")
    return problems


@check("printer")
def printer_ready(cfg: Config) -> CheckResult:
    if not cfg.printer.enabled:
        return CheckResult(True, "printing off")
    from appliance.printing.printer import BoothPrinter

    state = BoothPrinter(cfg).state(fresh=True)
    problems = []
    parts = urlsplit(cfg.printer.uri)
    if parts.hostname in ("localhost", "127.0.0.1", "::1") and parts.path.startswith(
            "/printers/"):
        problems = cups_problems()
    detail = f"{cfg.printer.uri}: {state['state']}"
    if state["problems"]:
        detail += " (" + ", ".join(state["problems"]) + ")"
    if problems:
        return CheckResult(False, detail + "; CUPS would keep prints: " + "; ".join(problems),
                           "provision the booth with [printing] enabled = true: it installs "
                           "a cupsd.conf and cups-files.conf that keep nothing")
    return CheckResult(bool(state["ready"]), detail, "load paper/ink, switch the printer on "
                       "and check printer.uri", warning=not state["ready"])
