"""How many phone uploads may be decoded and face-gated at once.

Why: a photo's decode and face gates run in a request thread and wait for the models (one user
at a time), so thirty phones uploading together would hold every thread and a guest's status
poll or page would wait behind them. Phones (the LAN) get at most ``LAN_SLOTS`` threads for
uploads; one more is answered at once with ``503 busy`` and ``Retry-After`` (the phone page
retries), so the other threads stay free for quick requests and for the kiosk, which has no
such limit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from appliance.errors import UserFacingError

LAN_SLOTS = 2
RETRY_AFTER_S = 2


class UploadSlots:
    def __init__(self, slots: int = LAN_SLOTS) -> None:
        self._slots = threading.BoundedSemaphore(slots)

    @contextlib.contextmanager
    def held(self, lan: bool) -> Iterator[None]:
        if not lan:
            yield
            return
        if not self._slots.acquire(blocking=False):
            raise UserFacingError("busy", "The booth is checking other guests' photos right "
                                  "now.", status=503, retry_after_s=RETRY_AFTER_S,
                                  remedy=f"Your phone tries again in {RETRY_AFTER_S} seconds.")
        try:
            yield
        finally:
            self._slots.release()
