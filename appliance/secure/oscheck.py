"""Operating-system checks: nothing of a guest may leak through swap or a core dump (P10).

Why here and at start-up: a photo in RAM is only as private as the RAM. Disk-backed swap can
write any page (tmpfs pages included) to flash, and a core dump writes the whole process. In
strict mode (the default on a device) the service refuses to start while either is possible,
with the command that fixes it; in development mode it warns.

Every function that reads the system takes its paths as parameters, so the tests feed it
fixture files describing machines other than the one they run on.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from appliance.secure.fs import RAM_FILESYSTEMS, filesystem_magic, filesystem_type
from appliance.secure.malloc_env import missing_malloc_env, shell_exports

log = logging.getLogger("ephemera.oscheck")

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int

SWAP_REMEDY = ("disable swap: `swapoff -a` and remove swap entries from /etc/fstab (and any "
               "zram writeback device); provisioning does this")
CORE_REMEDY = ("disable core dumps: set fs.suid_dumpable=0 (sysctl), Storage=none in "
               "/etc/systemd/coredump.conf, LimitCORE=0 in the unit; provisioning does this")


class StartupRefusedError(RuntimeError):
    """Strict mode found a way for guest data to reach persistent storage."""


@dataclass(frozen=True)
class Risk:
    """One way data could leak, with what the technician should do about it."""

    what: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.what} -> {self.remedy}"


def harden_process() -> dict[str, int]:
    """Make this process non-dumpable and forbid core files. Returns the resulting state.

    PR_SET_DUMPABLE 0 also stops ptrace by other unprivileged processes and makes
    /proc/PID/mem root-only; it is reset by execve, so call it in the process that holds data.
    """
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0) failed: {os.strerror(errno)}")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return {"dumpable": current_dumpable(),
            "rlimit_core": resource.getrlimit(resource.RLIMIT_CORE)[0]}


def current_dumpable() -> int:
    return int(_libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def _read(path: str | Path, default: str = "") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return default


def swap_risks(proc_swaps: str | Path = "/proc/swaps",
               sys_block: str | Path = "/sys/block") -> list[Risk]:
    """Active swap that can reach a disk: swap files, partitions, zram with a backing device.

    zram without ``backing_dev`` is compressed RAM and is fine.
    """
    risks = []
    for line in _read(proc_swaps).splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        device, kind = fields[0], fields[1] if len(fields) > 1 else "?"
        name = os.path.basename(device)
        if name.startswith("zram"):
            backing = _read(Path(sys_block) / name / "backing_dev").strip()
            if backing and backing != "none":
                risks.append(Risk(f"swap on {device} writes back to {backing} (zram with a "
                                  "backing device)", SWAP_REMEDY))
            continue
        risks.append(Risk(f"disk-backed swap is active: {device} ({kind})", SWAP_REMEDY))
    return risks


def _core_limit(proc_limits: str | Path) -> int | None:
    """Soft RLIMIT_CORE from a /proc/PID/limits file; -1 for unlimited, None if unreadable."""
    for line in _read(proc_limits).splitlines():
        if line.startswith("Max core file size"):
            soft = line[len("Max core file size"):].split()[0]
            return -1 if soft == "unlimited" else int(soft)
    return None


def core_dump_risks(core_pattern: str | Path = "/proc/sys/kernel/core_pattern",
                    suid_dumpable: str | Path = "/proc/sys/fs/suid_dumpable",
                    proc_limits: str | Path = "/proc/self/limits",
                    dumpable: int | None = None,
                    rlimit_core: int | None = None) -> list[Risk]:
    """Whether a crash of this process could write its memory somewhere.

    The rules (core(5), proc(5)): a pattern that pipes to a program (``|/usr/lib/systemd/...``)
    ignores RLIMIT_CORE, so only a non-dumpable process is safe from it; a non-dumpable process
    is still dumped when fs.suid_dumpable is 1, or 2 with a pipe or an absolute path.
    ``dumpable`` and ``rlimit_core`` override what is read (to judge a hardened process).
    """
    pattern = _read(core_pattern).strip()
    piped = pattern.startswith("|")
    limit = _core_limit(proc_limits) if rlimit_core is None else rlimit_core
    state = current_dumpable() if dumpable is None else dumpable
    suid_text = _read(suid_dumpable, "0").strip()
    suid = int(suid_text) if suid_text.isdigit() else 0
    files_allowed = limit is None or limit != 0
    risks: list[Risk] = []
    if state == 1 or suid == 1:
        why = "this process is dumpable" if state == 1 else "fs.suid_dumpable = 1"
        if piped:
            risks.append(Risk(f"core dumps are piped to {pattern[1:].split()[0]} and {why} "
                              "(a pipe ignores RLIMIT_CORE)", CORE_REMEDY))
        elif files_allowed and pattern:
            risks.append(Risk(f"core dumps are written to files ({pattern!r}, RLIMIT_CORE "
                              f"{'unlimited' if limit == -1 else limit}) and {why}",
                              CORE_REMEDY))
    elif suid == 2:
        if piped:
            risks.append(Risk(f"fs.suid_dumpable = 2 sends even non-dumpable processes to "
                              f"{pattern[1:].split()[0]}", CORE_REMEDY))
        elif files_allowed and pattern.startswith("/"):
            risks.append(Risk(f"fs.suid_dumpable = 2 writes non-dumpable processes to "
                              f"{pattern!r} (RLIMIT_CORE allows it)", CORE_REMEDY))
    return risks


def store_risks(path: str) -> list[Risk]:
    """The store directory (or its nearest existing parent) must be tmpfs or ramfs."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        magic = filesystem_magic(probe)
    except OSError as exc:
        return [Risk(f"cannot inspect the filesystem of {probe}: {exc.strerror}",
                     "check store.path")]
    if magic in RAM_FILESYSTEMS:
        return []
    return [Risk(f"store.path {path} is on {filesystem_type(probe)}, not tmpfs or ramfs",
                 "set store.path under /dev/shm or /run (RuntimeDirectory=), or mount a tmpfs")]


def malloc_risks(env: dict[str, str] | None = None) -> list[Risk]:
    missing = missing_malloc_env(env)
    if not missing:
        return []
    return [Risk(f"freed memory is not overwritten: {', '.join(missing)} not set as required",
                 "start through `ephemera serve` (it re-executes with them) or set in the "
                 "service environment: " + shell_exports().replace("\n", " "))]


def startup_checks(cfg: Config, *, proc_swaps: str | Path = "/proc/swaps",
                   sys_block: str | Path = "/sys/block",
                   core_pattern: str | Path = "/proc/sys/kernel/core_pattern",
                   suid_dumpable: str | Path = "/proc/sys/fs/suid_dumpable",
                   proc_limits: str | Path = "/proc/self/limits",
                   env: dict[str, str] | None = None) -> list[Risk]:
    """Harden this process, then look for leaks. Strict: raise; development: warn and return.

    Run it in the process that will hold guest data (the gunicorn worker), after any re-exec.
    """
    harden_process()
    risks = [
        *swap_risks(proc_swaps, sys_block),
        *core_dump_risks(core_pattern, suid_dumpable, proc_limits),
        *store_risks(cfg.store.path),
        *malloc_risks(env),
    ]
    if risks and cfg.strict:
        lines = "\n".join(f"  - {risk}" for risk in risks)
        raise StartupRefusedError("refusing to start in strict mode: guests' photos could reach "
                             f"persistent storage:\n{lines}\n(`ephemera doctor` shows every "
                             "check; mode = \"development\" only warns)")
    for risk in risks:
        log.warning("privacy risk (development mode, not refused): %s", risk)
    return risks


__all__ = ["Risk", "StartupRefusedError", "core_dump_risks", "current_dumpable", "filesystem_type",
           "harden_process", "malloc_risks", "startup_checks", "store_risks", "swap_risks"]
