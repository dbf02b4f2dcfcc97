"""strace proof at module level: decoding, encoding and storing a photo opens no file for
writing anywhere except the tmpfs store, and OpenCV's .hdr temp-file fallback writes nothing.
(The end-to-end trace of a whole job through HTTP is in tests/privacy/test_no_disk_writes.py.)

The trace is read by the one strace reader (tests/helpers/strace_log.py), which counts files
opened with O_TMPFILE and unlinks as writes too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import OPENCV_NO_TEMP_PATH
from tests.helpers.strace_log import outside, parse, strace_args

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ROOT / "tests" / "programs"
STRACE = shutil.which("strace")
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_a_photo_through_decode_encode_and_store_writes_only_to_tmpfs(tmp_path: Path,
                                                                      ram_dir: Path) -> None:
    hdr_hex = subprocess.run([sys.executable, str(PROGRAMS / "hdr_bytes.py")],
                             capture_output=True, text=True, check=True, env=CLEAN_ENV).stdout
    log = tmp_path / "trace.txt"
    result = subprocess.run(
        [str(STRACE), *strace_args("write"), "-o", str(log),
         sys.executable, str(PROGRAMS / "decode_encode_store.py"), str(ram_dir), hdr_hex],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["START", "END"]
    trace = parse(log, after="START")
    assert outside(trace, (str(ram_dir),), ()) == []
    stored = [w for w in trace.writes if w.ok and w.call.startswith("open")
              and any(p.startswith(str(ram_dir)) for p in w.paths)]
    assert stored, "the store write was not traced"
    assert any(w.ok and w.call.startswith("unlink") for w in trace.writes), \
        "the store's delete (overwrite, then unlink) was not traced"
    # OpenCV did try its temp-file fallback for .hdr, and the impossible path stopped it.
    blocked = [w for w in trace.writes
               if any(p.startswith(OPENCV_NO_TEMP_PATH) for p in w.paths)]
    assert blocked and not any(w.ok for w in blocked)
