"""Start the service by hand the way ephemera.service starts it, without systemd.

What is reproduced, read from the unit file itself:

* the environment: only systemd's default PATH plus the unit's ``Environment=`` lines (strict
  mode, the malloc settings, the store under /run/ephemera, ...); nothing of the caller's;
* the user switch: ``User=``/``Group=``/``SupplementaryGroups=`` with ``setpriv`` (the unit's
  user where this machine has it, else ``nobody`` as its stand-in), all capabilities dropped
  from every set (``CapabilityBoundingSet=`` empty), ``NoNewPrivileges=yes``, ``UMask=``;
* ``LimitCORE=`` and ``LimitMEMLOCK=`` with ``prlimit`` (memlock capped at this machine's
  hard limit where that is lower and cannot be raised);
* ``MemoryDenyWriteExecute=yes`` with ``prctl(PR_SET_MDWE)`` (Linux 6.3+, kept across exec).

Where the interpreter or the checkout lies under a directory the service user cannot enter (a
pyenv under /root on a build machine), the launch shows the service user just those trees, in a
private mount namespace: an empty view over the blocking directory with the needed
sub-directories bound into it, as the booth's /opt/ephemera is visible and /root is not
(``ProtectHome=yes``). Nothing is created during the launch itself, so strace sees no write.

What only systemd can apply (namespaces, seccomp, the BPF IP filter, device cgroup) is checked
by ``systemd-analyze`` in tests/provisioning/test_units.py instead. Where a path in the unit
does not exist on a test machine (the config, the store, the engines) the test gives its own,
and says so: ``OVERRIDDEN``.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.unit_file import UNITS, service_value, unit_environment

SYSTEMD_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Paths of the device that a test machine replaces with its own; the store (a fresh tmpfs
# directory under /dev/shm) and the port are set by tests/helpers/service.py as for every
# other service test.
OVERRIDDEN = ("EPHEMERA_CONFIG", "EPHEMERA_MODELS_ENGINES_DIR", "HOME")
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
MDWE_EXEC = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4\n"
    f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
    "    sys.exit('PR_SET_MDWE failed: ' + os.strerror(ctypes.get_errno()))\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n")
SIZES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass
class UnitLaunch:
    wrapper: tuple[str, ...]     # goes in front of `python -m appliance serve`
    base_env: dict[str, str]     # the whole environment, before the test's port and store
    env: dict[str, str]          # the unit's variables, with OVERRIDDEN paths replaced
    uid: int
    gid: int
    groups: tuple[int, ...]
    memlock: int
    scratch: Path

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def _bytes(text: str) -> int:
    return int(text[:-1]) * SIZES[text[-1]] if text[-1] in SIZES else int(text)


def _ids(unit: Path) -> tuple[int, int, tuple[int, ...]]:
    try:
        user = pwd.getpwnam(service_value(unit, "User") or "")
    except KeyError:
        user = pwd.getpwnam("nobody")  # the stand-in for the unit's user on a test machine
    try:
        gid = grp.getgrnam(service_value(unit, "Group") or "").gr_gid
    except KeyError:
        gid = user.pw_gid
    groups = []
    for name in (service_value(unit, "SupplementaryGroups") or "").split():
        with contextlib.suppress(KeyError):  # a group this machine lacks
            groups.append(grp.getgrnam(name).gr_gid)
    return user.pw_uid, gid, tuple(groups)


def _blocked(paths: list[Path]) -> dict[Path, set[str]]:
    """{directory others cannot enter: {its sub-directories on the way to ``paths``}}."""
    blocked: dict[Path, set[str]] = {}
    for path in paths:
        parts = path.resolve().parts
        for depth in range(1, len(parts) - 1):
            directory = Path(*parts[: depth + 1])
            if not directory.stat().st_mode & 0o001:
                blocked.setdefault(directory, set()).add(parts[depth + 1])
                break
    return blocked


def _namespace_prelude(scratch: Path, paths: list[Path]) -> tuple[str, ...]:
    """``unshare`` + mounts that make ``paths`` reachable for any user (see module doc)."""
    blocked = _blocked(paths)
    if not blocked:
        return ()
    commands = []
    for index, (directory, children) in enumerate(sorted(blocked.items())):
        view = scratch / f"view{index}"
        for child in sorted(children):
            (view / child).mkdir(parents=True)
            source = scratch / f"source{index}-{child}"
            source.mkdir()
            commands.append(f"mount --bind '{directory / child}' '{source}'")
        view.chmod(0o755)
        commands.append(f"mount --bind '{view}' '{directory}'")
        commands += [f"mount --bind '{scratch / f'source{index}-{child}'}' '{directory / child}'"
                     for child in sorted(children)]
    script = " && ".join(commands) + ' && exec "$@"'
    return ("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh")


def unit_launch(config_text: str, engines_dir: str,
                unit: Path = UNITS / "ephemera.service") -> UnitLaunch:
    """The wrapper and environment of ``unit``; ``config_text`` is the booth's configuration."""
    uid, gid, groups = _ids(unit)
    scratch = Path(tempfile.mkdtemp(prefix="ephemera-unit-"))
    scratch.chmod(0o755)  # the service user reads its configuration here
    config = scratch / "ephemera.toml"
    config.write_text(config_text)
    config.chmod(0o644)
    env = unit_environment(unit)
    env.pop("EPHEMERA_STORE_PATH")  # tests/helpers/service.py gives each test a tmpfs store
    env.update({"EPHEMERA_CONFIG": str(config), "EPHEMERA_MODELS_ENGINES_DIR": engines_dir,
                "HOME": str(scratch)})
    # A machine whose hard limit is lower (a container without CAP_SYS_RESOURCE) gets its hard
    # limit: the unit's value cannot be raised to there without systemd's privileges.
    memlock = min(_bytes(service_value(unit, "LimitMEMLOCK") or "8M"),
                  resource.getrlimit(resource.RLIMIT_MEMLOCK)[1])
    core = _bytes(service_value(unit, "LimitCORE") or "0")
    umask = service_value(unit, "UMask") or "0022"
    if os.geteuid() != 0:
        raise PermissionError("switching to the unit's user needs root")
    switch = ("setpriv", f"--reuid={uid}", f"--regid={gid}",
                  f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
                  "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all")
    # Without root no user switch is possible: the same process rules, the caller's user.
    prelude = _namespace_prelude(scratch, [Path(sys.executable).resolve().parent,
                                           Path(sys.prefix), Path(__file__).parents[2],
                                           Path(engines_dir)])
    wrapper = (*prelude, "prlimit", f"--core={core}:{core}", f"--memlock={memlock}:{memlock}", "--",
               *switch, "setpriv", "--no-new-privs", "--",
               "sh", "-c", f'umask {umask} && exec "$@"', "sh",
               sys.executable, "-c", MDWE_EXEC)
    base = {"PATH": SYSTEMD_DEFAULT_PATH}
    if service_value(unit, "MemoryDenyWriteExecute") != "yes":
        wrapper = wrapper[: wrapper.index(sys.executable)]
    return UnitLaunch(wrapper, base, env, uid, gid, groups, memlock, scratch)

