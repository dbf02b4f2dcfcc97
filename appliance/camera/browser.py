"""The default source: the kiosk page's own camera (getUserMedia).

Nothing runs on the server: the page shows its own preview and uploads the still over loopback
like a phone's photo (POST /api/photos). The state only tells the screens to use the browser.
"""

from __future__ import annotations

from typing import Any

from appliance.camera.base import CameraSource, Capture
from appliance.camera.registry import SourcePlugin
from appliance.errors import UserFacingError
from appliance.secure.buffers import SecureBuffer


def camera_in_browser() -> UserFacingError:
    """Not an outage to retry: with this source the server has no camera at all."""
    return UserFacingError(
        "camera_in_browser", "This booth uses its screen's own camera.", status=409,
        remedy="Take the photo on the booth's page and upload it (POST /api/photos).")


class BrowserSource(CameraSource):
    name = "browser"

    def start(self) -> None:
        self._set_state("browser")

    def close(self) -> None:
        self._set_state("stopped")

    def capture(self, owner: str) -> Capture:
        raise camera_in_browser()

    def preview_jpeg(self, owner: str) -> SecureBuffer:
        raise camera_in_browser()

    def state(self) -> dict[str, Any]:
        body = super().state()
        body["ready"] = True
        body["server_side"] = False
        return body


SOURCE = SourcePlugin("browser", "the kiosk page's own camera (default)", BrowserSource)
