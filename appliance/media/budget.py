"""A budget for decoded pixels: how many bytes of decoded images may exist at once, across every
request and job of the worker.

Why: the header checks refuse what no photo could be, but an upload may still honestly be up to
the pixel limit, and a few of them at once (or a few hundred-kilobyte images that decode to
100 MB each) used to take the worker past a gigabyte. Every decode reserves its peak before the
decoder runs (``decode_cost``), keeps what the decoded photo needs while its job holds it, and
gives everything back when the job lets go of its images. A request that finds the budget full
waits briefly for room, then gets 429 ``busy`` with a Retry-After, and nothing is decoded.
"""

from __future__ import annotations

import threading
import time

from appliance.errors import UserFacingError

DEFAULT_CAPACITY = 256 << 20  # two 40-megapixel decodes, or a queue full of 12 MP photos
WAIT_S = 3.0


class DecodedBytesBudget:
    """Bytes of decoded pixels per owner (a job id), under one capacity. Thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, wait_s: float = WAIT_S) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self._held: dict[str, int] = {}
        self._used = 0
        self._room = threading.Condition()

    @property
    def used(self) -> int:
        with self._room:
            return self._used

    def held(self, owner: str) -> int:
        with self._room:
            return self._held.get(owner, 0)

    def acquire(self, owner: str, nbytes: int) -> None:
        """Reserve ``nbytes`` for ``owner``, waiting up to ``wait_s`` for room; 429 otherwise."""
        if nbytes > self.capacity:
            raise UserFacingError(
                "too_many_pixels", "This photo needs more memory to decode than the booth "
                "sets aside for photos.", status=413,
                remedy="Send a smaller photo (phones can share a reduced size).")
        deadline = time.monotonic() + self.wait_s
        with self._room:
            while self._used + nbytes > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserFacingError(
                        "busy", "The booth is working on other guests' photos right now.",
                        status=429, retry_after_s=5, remedy="Try again in a few seconds.")
                self._room.wait(left)
            self._used += nbytes
            self._held[owner] = self._held.get(owner, 0) + nbytes

    def give_back(self, owner: str, nbytes: int) -> None:
        """Return part of ``owner``'s reservation (what a finished decode no longer needs)."""
        with self._room:
            held = self._held.get(owner, 0)
            nbytes = min(nbytes, held)
            if held - nbytes:
                self._held[owner] = held - nbytes
            else:
                self._held.pop(owner, None)
            self._used -= nbytes
            self._room.notify_all()

    def release(self, owner: str) -> int:
        """Return everything ``owner`` holds (its job released its images); returns bytes."""
        with self._room:
            nbytes = self._held.pop(owner, 0)
            self._used -= nbytes
            self._room.notify_all()
            return nbytes


BUDGET = DecodedBytesBudget()
