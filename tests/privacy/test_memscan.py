"""The memory scanner itself: it finds every form of a canary in a live process, and stops
finding them once that process wipes them. Without this, a clean scan of the service could mean
a blind scanner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers.memscan import Canary, encoded_patterns, process_tree, scan

HOLDER = Path(__file__).resolve().parent.parent / "programs" / "canary_holder.py"



def test_scanner_finds_every_form_while_held_and_none_after_wiping() -> None:
    canary = Canary.random(seed=7)
    blob = np.random.default_rng(8).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    patterns = {**canary.pixel_patterns(), **encoded_patterns(blob, 0, len(blob))}
    child = subprocess.Popen([sys.executable, str(HOLDER)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(canary.patch_rgb.tobytes().hex() + "\n" + blob.hex() + "\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "holding"
        held = scan(process_tree(child.pid), patterns)
        assert held.bytes_scanned > 1 << 20
        missing = sorted(name for name, count in held.counts.items() if count == 0)
        assert not missing, f"scanner did not find {missing}"

        child.stdin.write("wipe\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "wiped"
        after = scan(process_tree(child.pid), patterns)
        # The hex text the child read may still sit in freed memory; the decoded forms may not.
        assert {k: v for k, v in after.counts.items() if v} == {}, after.by_form()
    finally:
        child.kill()
        child.wait()
