"""OS checks on fixture files: swap, zram writeback, core dumps; strict refuses, dev warns."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.secure import malloc_env, oscheck

ROOT = Path(__file__).resolve().parent.parent
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
LIMITS = ("Limit                     Soft Limit           Hard Limit           Units     \n"
          "Max core file size        {core}                {core}                bytes     \n")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def machine(tmp_path: Path, swaps: str = "", backing: str | None = None,
            pattern: str = "core", suid: str = "0", core: str = "0") -> dict[str, Path]:
    block = tmp_path / "sys_block"
    block.mkdir(parents=True, exist_ok=True)
    if backing is not None:
        write(block, "zram0/backing_dev", backing + "\n")
    return {
        "proc_swaps": write(tmp_path, "swaps", SWAPS_HEADER + swaps),
        "sys_block": block,
        "core_pattern": write(tmp_path, "core_pattern", pattern + "\n"),
        "suid_dumpable": write(tmp_path, "suid_dumpable", suid + "\n"),
        "proc_limits": write(tmp_path, "limits", LIMITS.format(core=core)),
    }


def test_no_swap_and_zram_without_writeback_are_safe(tmp_path: Path) -> None:
    m = machine(tmp_path, swaps="/dev/zram0  partition\t2097148\t0\t100\n", backing="none")
    assert oscheck.swap_risks(m["proc_swaps"], m["sys_block"]) == []
    m = machine(tmp_path / "b", swaps="/dev/zram0  partition\t2097148\t0\t100\n")
    assert oscheck.swap_risks(m["proc_swaps"], m["sys_block"]) == []  # no backing_dev file
    m = machine(tmp_path / "c")
    assert oscheck.swap_risks(m["proc_swaps"], m["sys_block"]) == []


@pytest.mark.parametrize(("line", "expected"), [
    ("/swapfile                               file\t\t2097148\t\t0\t\t-2\n", "/swapfile (file)"),
    ("/dev/nvme0n1p3                          partition\t8388604\t0\t-2\n", "/dev/nvme0n1p3"),
])
def test_disk_backed_swap_is_a_risk(tmp_path: Path, line: str, expected: str) -> None:
    m = machine(tmp_path, swaps=line)
    risks = oscheck.swap_risks(m["proc_swaps"], m["sys_block"])
    assert len(risks) == 1 and expected in risks[0].what
    assert "swapoff -a" in risks[0].remedy and "/etc/fstab" in risks[0].remedy


def test_zram_with_a_backing_device_is_a_risk(tmp_path: Path) -> None:
    m = machine(tmp_path, swaps="/dev/zram0  partition\t2097148\t0\t100\n",
                backing="/dev/mmcblk0p9")
    risks = oscheck.swap_risks(m["proc_swaps"], m["sys_block"])
    assert len(risks) == 1 and "writes back to /dev/mmcblk0p9" in risks[0].what


@pytest.mark.parametrize(("pattern", "suid", "core", "dumpable", "risky"), [
    ("core", "0", "0", 1, False),                   # file dumps, RLIMIT_CORE 0
    ("core", "0", "unlimited", 1, True),            # file dumps allowed
    ("core", "0", "unlimited", 0, False),           # non-dumpable, suid_dumpable 0
    ("|/usr/lib/systemd/systemd-coredump %P", "0", "0", 1, True),   # a pipe ignores the limit
    ("|/usr/lib/systemd/systemd-coredump %P", "0", "0", 0, False),  # non-dumpable stops it
    ("|/usr/lib/systemd/systemd-coredump %P", "2", "0", 0, True),   # suidsafe pipes anyway
    ("/var/crash/core.%p", "2", "unlimited", 0, True),
    ("/var/crash/core.%p", "2", "0", 0, False),
    ("core", "2", "unlimited", 0, False),          # suidsafe needs an absolute path or pipe
    ("core", "1", "unlimited", 0, True),           # suid_dumpable 1 dumps everything
])
def test_core_dump_rules(tmp_path: Path, pattern: str, suid: str, core: str, dumpable: int,
                         risky: bool) -> None:
    m = machine(tmp_path, pattern=pattern, suid=suid, core=core)
    risks = oscheck.core_dump_risks(m["core_pattern"], m["suid_dumpable"], m["proc_limits"],
                                    dumpable=dumpable)
    assert bool(risks) is risky, risks
    if risks:
        assert "suid_dumpable=0" in risks[0].remedy


def test_harden_process_sets_non_dumpable_and_no_core_files() -> None:
    probe = ("from appliance.secure.oscheck import harden_process, current_dumpable\n"
             "import resource\n"
             "before = current_dumpable()\n"
             "state = harden_process()\n"
             "print(before, state['dumpable'], resource.getrlimit(resource.RLIMIT_CORE))\n"
             "print(open('/proc/self/limits').read())\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True)
    first, *limits = result.stdout.splitlines()
    assert first == "1 0 (0, 0)"
    line = next(line for line in limits if line.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"]
    assert resource.getrlimit(resource.RLIMIT_CORE)  # this test process was left alone


def test_strict_mode_refuses_with_what_to_do(tmp_path: Path) -> None:
    m = machine(tmp_path, swaps="/swapfile file 2097148 0 -2\n",
                pattern="|/usr/share/apport/apport %p", suid="2")
    probe = (
        "import sys, json\n"
        "from appliance.config import load_config\n"
        "from appliance.secure.oscheck import startup_checks, StartupRefusedError\n"
        "from appliance.secure.malloc_env import MALLOC_ENV\n"
        "paths = json.loads(sys.argv[1])\n"
        "cfg = load_config(env={'EPHEMERA_MODE': sys.argv[2], "
        "'EPHEMERA_STORE_PATH': '/dev/shm/ephemera-oscheck-test'})\n"
        "try:\n"
        "    risks = startup_checks(cfg, env=dict(MALLOC_ENV), **paths)\n"
        "    print('started', len(risks))\n"
        "except StartupRefusedError as exc:\n"
        "    print('refused'); print(exc)\n")
    paths = json.dumps({k: str(v) for k, v in m.items()})
    strict = subprocess.run([sys.executable, "-c", probe, paths, "strict"], capture_output=True,
                            text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert strict.stdout.startswith("refused"), strict.stderr
    assert "disk-backed swap is active: /swapfile" in strict.stdout
    assert "swapoff -a" in strict.stdout and "apport" in strict.stdout
    dev = subprocess.run([sys.executable, "-c", probe, paths, "development"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT)})
    assert dev.stdout.strip() == "started 2", dev.stderr
    assert "privacy risk (development mode, not refused)" in dev.stderr


def test_strict_mode_on_a_clean_machine_starts(tmp_path: Path) -> None:
    m = machine(tmp_path)
    assert oscheck.swap_risks(m["proc_swaps"], m["sys_block"]) == []
    assert oscheck.store_risks("/dev/shm/ephemera-oscheck-test/store") == []
    assert oscheck.malloc_risks(dict(malloc_env.MALLOC_ENV)) == []


def test_store_on_disk_and_missing_malloc_env_are_risks() -> None:
    risks = oscheck.store_risks(str(ROOT / "store"))
    assert risks and "not tmpfs or ramfs" in risks[0].what
    risks = oscheck.malloc_risks({})
    assert risks and "PYTHONMALLOC" in risks[0].what and "MALLOC_PERTURB_=" in risks[0].remedy


def test_filesystem_type_reads_the_kernels_answer() -> None:
    assert oscheck.filesystem_type("/dev/shm") == "tmpfs"
    assert oscheck.filesystem_type("/proc") == "proc"
    with pytest.raises(OSError):
        oscheck.filesystem_type("/definitely/not/here")
