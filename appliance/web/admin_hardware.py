"""The camera's and the printer's state for the operator's page: what failed, never a picture.

Why its own module: the operator must see "camera reconnecting (the last error)" and "printer
out of paper" at a glance, and these readings come from the devices, not from the job queue.
"""

from __future__ import annotations

from typing import Any

CAMERA_KEYS = ("source", "state", "ready", "last_error", "restarts", "retry_in_s",
               "capture_target", "captures_to_ram", "model")
PRINTER_KEYS = ("enabled", "state", "ready", "problems", "warnings", "reasons", "message",
                "model", "uri", "last_error")


def hardware(app_extensions: dict[str, Any]) -> dict[str, Any]:
    """``{"camera": {...}, "printer": {...}}``; a device the app has not set up reads None."""
    camera = app_extensions.get("ephemera.camera")
    printer = app_extensions.get("ephemera.printer")
    camera_state = camera.state() if camera is not None else None
    printer_state = printer.state() if printer is not None else None
    return {
        "camera": ({k: camera_state[k] for k in CAMERA_KEYS if k in camera_state}
                   if camera_state is not None else None),
        "printer": ({k: printer_state[k] for k in PRINTER_KEYS if k in printer_state}
                    if printer_state is not None else None),
    }
