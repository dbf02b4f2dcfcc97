"""Read an ``strace -f`` log and list every file created or opened for writing.

The no-disk-writes proof (P1) runs the service under strace and asserts that nothing outside
the tmpfs store and an explicit allow-list was created, truncated, renamed, linked or opened
with write access. Only calls that succeeded count as writes; failed attempts are listed too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TRACED = ("open", "openat", "openat2", "creat", "rename", "renameat", "renameat2", "link",
          "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "mknod", "mknodat", "mkdir",
          "mkdirat", "truncate")
STRACE_ARGS = ("-f", "-qq", "-s", "4096", "-e", "trace=" + ",".join(TRACED))

_CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
_PATH = re.compile(r'"((?:[^"\\]|\\.)*)"')
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE")
ALWAYS_WRITES = {"creat", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
                 "symlinkat", "unlink", "unlinkat", "mknod", "mknodat", "mkdir", "mkdirat",
                 "truncate"}


@dataclass
class Write:
    pid: int
    call: str
    paths: list[str]
    ok: bool
    line: str


@dataclass
class Trace:
    calls: int = 0
    writes: list[Write] = field(default_factory=list)


def parse(log: Path) -> Trace:
    trace = Trace()
    pending: dict[str, str] = {}
    for raw in log.read_text(errors="replace").splitlines():
        line = raw.strip()
        if "<unfinished ...>" in line:
            pid = line.split()[0].strip("[]pid ")
            pending[pid] = line.split("<unfinished ...>")[0]
            continue
        if "resumed>" in line:
            pid = line.split()[0].strip("[]pid ")
            line = pending.pop(pid, "") + line.split("resumed>", 1)[1]
        match = _CALL.match(line)
        if not match:
            continue
        pid, call, args, result = match.groups()
        trace.calls += 1
        writes = call in ALWAYS_WRITES or (
            call.startswith("open") and any(flag in args for flag in WRITE_FLAGS))
        if writes:
            trace.writes.append(Write(int(pid), call, _PATH.findall(args),
                                      result not in ("?",) and int(result) >= 0, line))
    return trace


def outside(trace: Trace, allowed_prefixes: tuple[str, ...], allowed_exact: tuple[str, ...]
            ) -> list[Write]:
    """Successful writes to a path that is neither allowed exactly nor under an allowed prefix.

    Relative paths are resolved by the caller's assumption that the service never uses any;
    they are reported as they are (and so fail the test).
    """
    bad = []
    for write in trace.writes:
        if not write.ok:
            continue
        for path in write.paths:
            if path in allowed_exact or any(path.startswith(p) for p in allowed_prefixes):
                continue
            bad.append(write)
            break
    return bad
