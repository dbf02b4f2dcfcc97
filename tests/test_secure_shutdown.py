"""SIGTERM/SIGINT wipe every secure buffer and run wipe callbacks, then chain to the old handler."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "programs" / "shutdown_child.py"



def run_child(mode: str, sig: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHILD), mode, sig], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})


def test_sigterm_wipes_then_chains_to_the_previous_handler() -> None:
    result = run_child("chain", "SIGTERM")
    assert result.returncode == 7, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"callback_ran": True, "previous_saw_live_buffers": 0,
                      "previous_saw_zeros": True}


def test_sigterm_without_a_previous_handler_exits_like_the_default() -> None:
    result = run_child("alone", "SIGTERM")
    assert result.returncode == 128 + signal.SIGTERM, result.stderr


def test_sigint_wipes_then_raises_keyboard_interrupt() -> None:
    result = run_child("alone", "SIGINT")
    assert result.returncode == 130, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"keyboard_interrupt": True, "live": 0, "zeros": True}


def test_install_refuses_outside_the_main_thread() -> None:
    import threading

    from appliance.secure.shutdown import install_shutdown_wipe

    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            install_shutdown_wipe()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_uninstall_restores_the_previous_handler(signum: int) -> None:
    from appliance.secure.shutdown import install_shutdown_wipe, uninstall_shutdown_wipe

    before = signal.getsignal(signum)
    install_shutdown_wipe()
    assert signal.getsignal(signum) is not before
    uninstall_shutdown_wipe()
    assert signal.getsignal(signum) == before
