"""`ephemera doctor`'s camera line (registered with @check)."""

from __future__ import annotations

import shutil

from appliance.config import Config
from appliance.doctor import CheckResult, check


@check("camera")
def camera_ready(cfg: Config) -> CheckResult:
    source = cfg.camera.source
    if source == "browser":
        return CheckResult(True, "source browser: the kiosk page's own camera")
    if source == "gstreamer":
        if shutil.which("gst-launch-1.0") is None:
            return CheckResult(False, "source gstreamer but gst-launch-1.0 is missing",
                               "apt install gstreamer1.0-tools gstreamer1.0-plugins-base "
                               "gstreamer1.0-plugins-good")
        from appliance.camera.gstreamer import default_source

        fragment = cfg.camera.pipeline.strip() or default_source(cfg)
        return CheckResult(True, f"source gstreamer: {fragment}, still "
                                 f"{cfg.camera.still_size[0]}x{cfg.camera.still_size[1]}")
    from appliance.camera.gphoto2_source import probe_capture_target

    try:
        ok, detail = probe_capture_target()
    except Exception as exc:
        return CheckResult(False, f"source gphoto2: {exc}", "pip install gphoto2; connect "
                           "the camera by USB and switch it on", warning=True)
    return CheckResult(ok, f"source gphoto2: {detail}",
                       "this camera would keep shots on its card: use one from the list in "
                       "docs/hardware.md", warning=not ok)
