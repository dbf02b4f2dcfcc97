"""Hold secure buffers, then signal itself: the shutdown wipe must run before the old handler.

``python shutdown_child.py chain|default SIGTERM|SIGINT``; prints "ready", then a JSON report
from the previous handler (exit 7) or from the KeyboardInterrupt (exit 130). Run by
tests/test_secure_shutdown.py.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY
from appliance.secure.shutdown import install_shutdown_wipe, register_wipe

report: dict[str, Any] = {}
views: list[npt.NDArray[np.uint8]] = []


def previous(signum: int, frame: FrameType | None) -> None:
    report["previous_saw_live_buffers"] = len(REGISTRY.live())
    report["previous_saw_zeros"] = all(not v.any() for v in views)
    print(json.dumps(report), flush=True)
    os._exit(7)


def main(mode: str, signal_name: str) -> None:
    if mode == "chain":
        signal.signal(signal.SIGTERM, previous)
    install_shutdown_wipe(lambda: report.setdefault("callback_ran", True))
    install_shutdown_wipe()  # idempotent: must not chain to itself
    register_wipe(lambda: 1 / 0)  # a failing callback must not stop the wipe
    for n in (100, 5000, 100000):
        buf = REGISTRY.allocate(n, owner=f"job-{n}")
        view = buf.view()
        view[:] = 0xAB
        views.append(view)
    print("ready", flush=True)
    try:
        os.kill(os.getpid(), getattr(signal, signal_name))
        signal.pause()
    except KeyboardInterrupt:
        print(json.dumps({"keyboard_interrupt": True, "live": len(REGISTRY.live()),
                          "zeros": all(not v.any() for v in views)}), flush=True)
        sys.exit(130)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
