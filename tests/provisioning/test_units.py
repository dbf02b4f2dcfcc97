"""The systemd units: clean under ``systemd-analyze verify``, ephemera.service's exposure under
``systemd-analyze security --offline=true`` at 2.0 or lower (printed for CI's log), and the
settings the privacy design relies on actually present."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.secure.malloc_env import missing_malloc_env
from tests.helpers.unit_file import UNITS, parse_unit, service_value, unit_environment
from tests.provisioning.scratch import HOST_UNITS, booth_file, make_root, provision

MAX_EXPOSURE = 2.0
UNIT_FILES = sorted(p.name for p in UNITS.glob("*.service"))
# What the units start; the scratch root has stand-in executables at these paths because
# `verify` checks that each command exists and is executable.
EXECUTABLES = ("opt/ephemera/venv/bin/python", "usr/bin/cage", "usr/bin/chromium",
               "usr/sbin/hostapd", "usr/sbin/dnsmasq", "usr/sbin/ip")

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or HOST_UNITS is None,
    reason="systemd-analyze is not installed (make system-deps installs systemd)")


@pytest.fixture(scope="module")
def booth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("units")
    root = make_root(base)
    result = provision("--config", booth_file(base), "--root", root)
    assert result.returncode == 0, result.stderr
    for name in EXECUTABLES:
        exe = root / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n# stand-in: systemd-analyze verify only checks it exists\n")
        exe.chmod(0o755)
    return root


def test_every_unit_is_installed_by_provisioning(booth_root: Path) -> None:
    installed = {p.name for p in (booth_root / "etc/systemd/system").glob("*.service")}
    assert set(UNIT_FILES) <= installed, set(UNIT_FILES) - installed


@needs_analyze
@pytest.mark.parametrize("unit", UNIT_FILES)
def test_systemd_analyze_verify_is_clean(booth_root: Path, unit: str) -> None:
    result = subprocess.run(["systemd-analyze", "verify", f"--root={booth_root}", unit],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_analyze
def test_exposure_of_the_booth_service(booth_root: Path) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             f"--root={booth_root}", "--no-pager", "ephemera.service"],
                            capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for ephemera\.service: (\d+\.\d+)",
                      result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"\nsystemd-analyze security --offline=true ephemera.service (with the provisioned "
          f"drop-in): exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_booth_service_settings_the_privacy_design_needs() -> None:
    unit = UNITS / "ephemera.service"
    service = parse_unit(unit)["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["all"]
    assert int(service["WatchdogSec"][0]) > 0
    assert service["LimitCORE"] == ["0"] and service["LimitMEMLOCK"]
    assert service["DevicePolicy"] == ["closed"] and service["IPAddressDeny"] == ["any"]
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    assert service["MemorySwapMax"] == ["0"] and service["MemoryMax"]
    assert any(v.startswith("/run/ephemera:size=") for v in service["TemporaryFileSystem"])
    env = unit_environment(unit)
    assert missing_malloc_env(env) == []
    assert env["EPHEMERA_MODE"] == "strict"
    assert env["EPHEMERA_STORE_PATH"].startswith("/run/ephemera/")


def test_kiosk_keeps_its_profile_in_ram() -> None:
    unit = UNITS / "ephemera-kiosk.service"
    exec_start = service_value(unit, "ExecStart") or ""
    assert service_value(unit, "Restart") == "always"
    assert "--user-data-dir=/run/ephemera-kiosk/profile" in exec_start
    assert "--disk-cache-dir=/dev/null" in exec_start and "--disable-breakpad" in exec_start
    assert "http://127.0.0.1:8080" in (UNITS.parent / "provisioning/kiosk/preparing.html"
                                       ).read_text()
    assert service_value(unit, "RuntimeDirectory") == "ephemera-kiosk"


def test_engines_unit_runs_before_the_booth() -> None:
    unit = parse_unit(UNITS / "ephemera-engines.service")
    assert unit["Unit"]["Before"] == ["ephemera.service"]
    assert unit["Service"]["Type"] == ["oneshot"]
    assert "ephemera-engines.service" in parse_unit(UNITS / "ephemera.service")["Unit"]["After"][0]
