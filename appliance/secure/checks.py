"""`ephemera doctor` checks for the privacy mechanisms: one per way a photo could leak.

Swap and core dumps fail in strict mode and warn in development mode, matching what
``startup_checks`` does when the service starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from appliance import OPENCV_NO_TEMP_PATH
from appliance.config import Config
from appliance.doctor import CheckResult, check
from appliance.secure import oscheck
from appliance.secure.buffers import memfd_secret_available, memlock_limit
from appliance.secure.malloc_env import missing_malloc_env, shell_exports

CAP_IPC_LOCK = 14
RECOMMENDED_MEMLOCK = 1 << 30


def _joined(risks: list[oscheck.Risk]) -> str:
    return "; ".join(risk.what for risk in risks)


@check("swap")
def swap(cfg: Config) -> CheckResult:
    risks = oscheck.swap_risks()
    if not risks:
        return CheckResult(True, "no disk-backed swap (zram without writeback is fine)")
    return CheckResult(False, _joined(risks), oscheck.SWAP_REMEDY, warning=not cfg.strict)


@check("core_dumps")
def core_dumps(cfg: Config) -> CheckResult:
    # Judge the process as the service will run it: hardened (non-dumpable, RLIMIT_CORE 0).
    risks = oscheck.core_dump_risks(dumpable=0, rlimit_core=0)
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if not risks:
        return CheckResult(True, f"a hardened service process cannot dump core "
                                 f"(core_pattern {pattern!r})")
    return CheckResult(False, _joined(risks), oscheck.CORE_REMEDY, warning=not cfg.strict)


@check("store_tmpfs")
def store_tmpfs(cfg: Config) -> CheckResult:
    risks = oscheck.store_risks(cfg.store.path)
    if risks:
        return CheckResult(False, _joined(risks), risks[0].remedy)
    return CheckResult(True, f"{cfg.store.path} is on RAM "
                             f"({oscheck.filesystem_type(_existing(cfg.store.path))})")


def _existing(path: str) -> Path:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


@check("malloc_env")
def malloc_env(cfg: Config) -> CheckResult:
    missing = missing_malloc_env()
    if not missing:
        return CheckResult(True, "freed memory is overwritten (PYTHONMALLOC, MALLOC_PERTURB_, "
                                 "tcache off, fixed mmap threshold)")
    return CheckResult(False, f"not set in this environment: {', '.join(missing)}; the service "
                              "process needs them (strict mode refuses to start without them)",
                       "start the service with " + shell_exports().replace("\n", " ")
                       + " (the systemd unit sets them)", warning=True)


@check("memfd_secret")
def memfd_secret(cfg: Config) -> CheckResult:
    if not cfg.secure.memfd_secret:
        return CheckResult(False, "turned off by secure.memfd_secret = false",
                           "set secure.memfd_secret = true (the default)", warning=True)
    if memfd_secret_available():
        return CheckResult(True, "available: secure buffers are hidden from the kernel's "
                                 "direct map and from /proc/PID/mem")
    return CheckResult(False, "not available: secure buffers fall back to mlock'd anonymous "
                              "memory (still wiped, not dumped)",
                       "use Linux 5.14+ with CONFIG_SECRETMEM (and secretmem.enable=1)",
                       warning=True)


def _has_cap_ipc_lock(status: str = "/proc/self/status") -> bool:
    for line in Path(status).read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_IPC_LOCK & 1)
    return False


@check("memlock")
def memlock(cfg: Config) -> CheckResult:
    soft, _hard = memlock_limit()
    shown = "unlimited" if soft == -1 else f"{soft >> 20} MiB"
    if soft == -1 or soft >= RECOMMENDED_MEMLOCK or _has_cap_ipc_lock():
        return CheckResult(True, f"RLIMIT_MEMLOCK {shown}; secure buffers can be locked in RAM")
    return CheckResult(False, f"RLIMIT_MEMLOCK is {shown}: large secure buffers fall back to "
                              "unlocked memory",
                       "set LimitMEMLOCK=infinity in the service unit (or `ulimit -l` >= 1 GiB)",
                       warning=True)


@check("opencv_temp")
def opencv_temp(cfg: Config) -> CheckResult:
    value = os.environ.get("OPENCV_TEMP_PATH")
    if value == OPENCV_NO_TEMP_PATH and not os.path.exists(value):
        return CheckResult(True, f"OpenCV's temp-file fallback points at {value}, which cannot "
                                 "be created")
    return CheckResult(False, f"OPENCV_TEMP_PATH is {value!r}", "import appliance before cv2 "
                              "(the package sets it); report this as a bug")


def init_on_free_enabled(cmdline: str = "/proc/cmdline") -> bool:
    """Whether the kernel clears pages when they are freed (boot parameter ``init_on_free=1``)."""
    try:
        words = Path(cmdline).read_text().split()
    except OSError:
        return False
    return "init_on_free=1" in words


@check("init_on_free")
def init_on_free(cfg: Config) -> CheckResult:
    """Without it, pages of a killed process keep their contents in free RAM until reused."""
    if init_on_free_enabled():
        return CheckResult(True, "the kernel clears freed pages (init_on_free=1)")
    return CheckResult(False, "the kernel does not clear freed pages: after a crash or kill -9, "
                              "unwiped pages (not memfd_secret ones) stay in free RAM until "
                              "reused",
                       "add init_on_free=1 to the kernel command line (extlinux.conf on a "
                       "Jetson) where its small cost is acceptable", warning=True)
