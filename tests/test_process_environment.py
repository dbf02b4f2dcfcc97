"""Importing the package switches off libraries' own disk writes, whatever the environment says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.booth_env import booth_environ

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "engines" / "onnx" / "face_detection_short.onnx"

PACKAGE_IMPORT = "import appliance  # must come first: it sets the process environment\n"
SCRIPT = PACKAGE_IMPORT + """import onnxruntime as ort
ort.InferenceSession({model!r}, providers=["CPUExecutionProvider"])
"""


def _booth_like_env(home: Path) -> dict[str, str]:
    """A booth's environment (no CI variables: ONNX Runtime skips telemetry under CI by itself),
    without our own switch, with an empty home to watch."""
    env = booth_environ()
    env.pop("ORT_DISABLE_TELEMETRY", None)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    return env


def _files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("user_setting", [None, "0"])
def test_onnxruntime_writes_nothing_in_home(tmp_path: Path, user_setting: str | None) -> None:
    if not MODEL.is_file():
        pytest.fail("models are not built: run `make models` (or `ephemera build`) first")
    env = _booth_like_env(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    if user_setting is not None:
        env["ORT_DISABLE_TELEMETRY"] = user_setting  # an operator cannot turn it back on
    subprocess.run([sys.executable, "-c", SCRIPT.format(model=str(MODEL))], env=env, check=True,
                   cwd=tmp_path)
    assert _files_under(tmp_path) == []


def test_without_the_package_onnxruntime_does_write_there(tmp_path: Path) -> None:
    """The same session without importing appliance does write there: the test above means it."""
    if not MODEL.is_file():
        pytest.fail("models are not built: run `make models` (or `ephemera build`) first")
    env = _booth_like_env(tmp_path)
    script = SCRIPT.replace(PACKAGE_IMPORT, "")
    subprocess.run([sys.executable, "-c", script.format(model=str(MODEL))], env=env, check=True,
                   cwd=tmp_path)
    if not any("onnxruntime" in name for name in _files_under(tmp_path)):
        pytest.skip("this onnxruntime keeps no telemetry cache: nothing left to switch off")
