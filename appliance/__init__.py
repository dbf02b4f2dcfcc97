"""Ephemera: the photo booth that forgets. Service, kiosk and pipeline for the appliance."""

import os as _os

# OpenCV falls back to a temporary file for codecs that cannot work in memory (.hdr decode,
# .hdr/.jp2 encode). Point that fallback at a directory that can never exist (/proc refuses new
# entries) before cv2 is imported anywhere in the package, so the fallback fails instead of
# writing a guest's pixels to disk. Forced, not defaulted: no environment may re-enable it.
OPENCV_NO_TEMP_PATH = "/proc/ephemera-no-temp-files"
_os.environ["OPENCV_TEMP_PATH"] = OPENCV_NO_TEMP_PATH

# ONNX Runtime (1.32 seen) creates ~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db
# and a device id at the first session, for telemetry: a disk write and an outbound channel we
# never want (P1, P5). Forced off for every entry point (serve, detect, build, benchmarks)
# before onnxruntime can be imported through the package.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
