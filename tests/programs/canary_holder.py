"""Hold a canary in every form the service could (pixels, floats, encoded bytes), then wipe.

Reads the 64 x 64 RGB patch and an encoded blob as hex lines on stdin; prints "holding", waits
for a line, wipes everything, prints "wiped", waits again. Run by
tests/privacy/test_memscan.py to prove the scanner finds what it looks for.
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    raw = bytearray.fromhex(sys.stdin.readline())
    patch = np.frombuffer(raw, dtype=np.uint8).reshape(64, 64, 3)
    blob = bytearray.fromhex(sys.stdin.readline())
    rgb = patch.copy()
    bgr = patch[:, :, ::-1].copy()
    f01 = rgb.astype(np.float32) * np.float32(1.0 / 255.0) + np.float32(0.0)
    f11 = rgb.astype(np.float32) * np.float32(2.0 / 255.0) + np.float32(-1.0)
    chw01 = np.ascontiguousarray(f01.transpose(2, 0, 1))
    chw11 = np.ascontiguousarray(f11.transpose(2, 0, 1))
    f01b, f11b = f01[:, :, ::-1].copy(), f11[:, :, ::-1].copy()
    print("holding", flush=True)
    sys.stdin.readline()
    for array in (rgb, bgr, f01, f11, chw01, chw11, f01b, f11b):
        array.fill(0)
    blob[:] = bytes(len(blob))
    raw[:] = bytes(len(raw))
    print("wiped", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
