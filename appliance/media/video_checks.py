"""`ephemera doctor`: which H.264 encoder the kiss video will use on this machine, and why."""

from __future__ import annotations

from appliance.config import Config
from appliance.doctor import CheckResult, check
from appliance.media.video import choose_encoder


@check("video encoder")
def _video_encoder(_cfg: Config) -> CheckResult:
    choice = choose_encoder()
    if choice.name == "libx264":
        try:
            from av.codec import Codec  # the software path needs PyAV's libx264

            Codec("libx264", "w")
        except Exception as exc:
            return CheckResult(False, f"libx264 unavailable: {exc}",
                               "reinstall the appliance's Python dependencies (PyAV)")
    return CheckResult(True, f"{choice.name}: {choice.reason}")
