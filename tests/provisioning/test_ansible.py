"""The fleet playbook: syntax, a --check run that maps to --dry-run (changes nothing), then a
real run and a second one that reports nothing changed, all against a local scratch root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.provisioning.scratch import REPO, make_root, tree

PLAYBOOK = REPO / "provisioning" / "ansible" / "site.yml"
ANSIBLE = Path(sys.executable).with_name("ansible-playbook")
pytestmark = pytest.mark.skipif(not ANSIBLE.exists() and shutil.which("ansible-playbook") is None,
                                reason="ansible-core is not installed (it is in the dev extra)")


def playbook(tmp_path: Path, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(ANSIBLE) if ANSIBLE.exists() else "ansible-playbook"
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_STDOUT_CALLBACK": "default",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([exe, "-i", str(inventory), str(PLAYBOOK), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def inventory(tmp_path: Path, root: Path) -> Path:
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "ephemera_become": False, "ephemera_checkout": str(REPO),
            "ephemera_root": str(root), "ephemera_config_path": str(tmp_path / "booth.toml"),
            "booth_name": "booth-09", "lan_address": "192.168.49.1", "wifi_enabled": True,
            "wifi_password": "fleet-secret-09", "admin_pin": "135790"}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"booths": {"hosts": {"scratch-booth": host}}}))
    return path


def recap_changed(output: str) -> int:
    line = next(ln for ln in output.splitlines() if ln.startswith("scratch-booth"))
    return int(line.split("changed=")[1].split()[0])


def test_syntax_check(tmp_path: Path) -> None:
    result = playbook(tmp_path, inventory(tmp_path, tmp_path), "--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_mode_is_a_dry_run_then_apply_then_nothing_to_do(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    inv = inventory(tmp_path, root)
    before = tree(root)
    check = playbook(tmp_path, inv, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "would create /etc/ephemera/ephemera.toml" in check.stdout, check.stdout
    assert tree(root) == before

    applied = playbook(tmp_path, inv)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (root / "etc/ephemera/tls/server.crt").is_file()
    assert "booth-09.local" in (root / "etc/ephemera/dnsmasq.conf").read_text()
    assert recap_changed(applied.stdout) >= 1

    again = playbook(tmp_path, inv)
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap_changed(again.stdout) == 0, again.stdout
