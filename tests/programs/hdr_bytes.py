"""Print a small Radiance .hdr image as hex (without the package, whose settings would stop
OpenCV's temp-file fallback that .hdr encoding needs)."""

from __future__ import annotations

import sys

import cv2
import numpy as np

ok, encoded = cv2.imencode(".hdr", np.full((8, 8, 3), 0.5, np.float32))
assert ok
sys.stdout.write(encoded.tobytes().hex())
