"""Read an ``strace -f`` log: every file created or opened for writing, every network peer.

The no-disk-writes proof (P1) runs the service under strace and asserts that nothing outside
the tmpfs store and an explicit allow-list was created, truncated, renamed, linked or opened
with write access. Only calls that succeeded count as writes; failed attempts are listed too.
The same trace lists every address the service tried to reach (``connect``, ``sendto`` and
``sendmsg`` with a destination) for the never-online proof (P5): attempts count, failed or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TRACED = ("open", "openat", "openat2", "creat", "rename", "renameat", "renameat2", "link",
          "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "mknod", "mknodat", "mkdir",
          "mkdirat", "truncate", "connect", "sendto", "sendmsg")


def strace_args(*also: str) -> tuple[str, ...]:
    """strace's options for these calls (and ``also``, e.g. "write" to see a marker line)."""
    return ("-f", "-qq", "-s", "4096", "-e", "trace=" + ",".join(TRACED + also))


STRACE_ARGS = strace_args()

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
class Peer:
    """One attempt to reach an address: its family and the address as strace printed it."""

    pid: int
    call: str
    family: str
    address: str
    line: str


@dataclass
class Trace:
    calls: int = 0
    writes: list[Write] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)


_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_INET_ADDRESS = re.compile(r'inet_(?:addr|pton)\((?:AF_INET6, )?"([^"]+)"')
_UNIX_PATH = re.compile(r'sun_path=(@?"[^"]*")')


def _peer(pid: int, call: str, args: str, line: str) -> Peer | None:
    """The destination of a connect/sendto/sendmsg, or None when it names none (NULL)."""
    family = _FAMILY.search(args)
    if family is None:
        return None
    address = _INET_ADDRESS.search(args) or _UNIX_PATH.search(args)
    return Peer(pid, call, family.group(1), address.group(1) if address else "", line)


def parse(log: Path, after: str | None = None) -> Trace:
    """Every traced call of the log; with ``after``, only those after the traced program
    wrote that marker to its standard output (trace with ``strace_args("write")``)."""
    trace = Trace()
    pending: dict[str, str] = {}
    started = after is None
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
        if not started:
            started = call == "write" and args.startswith(f'1, "{after}')
            continue
        trace.calls += 1
        if call in ("connect", "sendto", "sendmsg"):
            peer = _peer(int(pid), call, args, line)
            if peer is not None:
                trace.peers.append(peer)
            continue
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


LOCAL_FAMILIES = ("AF_UNIX", "AF_LOCAL", "AF_NETLINK")


def off_box(trace: Trace) -> list[Peer]:
    """Attempts to reach anything but this machine: not loopback, not a local socket."""
    import ipaddress

    bad = []
    for peer in trace.peers:
        if peer.family in LOCAL_FAMILIES:
            continue
        try:
            if ipaddress.ip_address(peer.address).is_loopback:
                continue
        except ValueError:
            pass
        bad.append(peer)
    return bad


# Written by the service but never holding image data, each for a stated reason.
SERVICE_ALLOWED_EXACT = ("/dev/null",)
SERVICE_ALLOWED_PREFIXES = (
    "/proc/self/", "/proc/thread-self/",  # the process's own settings (e.g. hardening)
    "/dev/shm/wgunicorn-",  # gunicorn's worker heartbeat: an empty, unlinked file on tmpfs
)


def assert_service_kept_to_the_store(log: Path, store: Path) -> dict[str, int]:
    """P1 and P5 over a traced service run: no successful write outside the store's tmpfs
    folder (and the allow-list above), at least one write in it (the trace is the service's),
    and no peer off this machine. Returns counts for the test's report line."""
    trace = parse(log)
    store_root = str(store.parent) + "/"
    bad = outside(trace, (store_root, *SERVICE_ALLOWED_PREFIXES),
                  (*SERVICE_ALLOWED_EXACT, str(store.parent)))
    assert trace.calls > 100, "strace saw almost nothing: is the log the service's?"
    assert any(store_root in w.line for w in trace.writes), "no store write seen"
    assert bad == [], "\n".join(w.line for w in bad[:20])
    online = off_box(trace)
    assert online == [], "\n".join(p.line for p in online[:20])
    return {"calls_checked": trace.calls, "write_like_calls": len(trace.writes),
            "in_store": sum(1 for w in trace.writes
                            if any(p.startswith(store_root) for p in w.paths)),
            "peers_seen": len(trace.peers)}
