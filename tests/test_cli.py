"""The `ephemera` command: help that reads well, exit codes, and `serve` under real gunicorn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appliance.cli import main
from tests.helpers.service import free_port

REPO = Path(__file__).resolve().parent.parent


def test_help_lists_the_verbs_and_common_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("serve", "doctor", "config"):
        assert verb in out
    assert "http://127.0.0.1:8080" in out


def test_no_verb_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: ephemera" in capsys.readouterr().out


def test_python_dash_m_appliance_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "appliance", "--version"],
                            capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("ephemera ")


def test_doctor_prints_one_line_per_check_and_a_summary(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line[:4] in ("PASS", "FAIL", "WARN")]
    assert lines, out
    assert any(" config " in line for line in lines)
    assert "checks passed" in out
    assert code == (1 if any(line.startswith("FAIL") for line in lines) else 0)


def test_serve_runs_gunicorn_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    store_root = Path(f"/dev/shm/ephemera-test-{port}")
    env = {**os.environ, "EPHEMERA_KIOSK_PORT": str(port),
           "EPHEMERA_STORE_PATH": str(store_root / "store"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "serve"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = json.load(r)
                break
            except OSError:
                time.sleep(0.3)
        assert body is not None, "service did not answer on the kiosk port"
        assert body["status"] == "ok"
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                                   text=True, check=False).stdout
        addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
        assert addresses == {"127.0.0.1"}, listening
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        shutil.rmtree(store_root, ignore_errors=True)
    assert "gunicorn" in output.lower() or "Listening at" in output
