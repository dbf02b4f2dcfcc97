"""Per-client counters with a sliding window: uploads, failed token attempts.

Why in memory and per address: the booth is one process and forgets everything at restart,
which is what a guest LAN needs (a phone's address changes with the Wi-Fi anyway). Bounded:
at most ``max_keys`` addresses are tracked; the oldest is forgotten first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` hits per key within ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.max_keys, self.clock = limit, window_s, max_keys, clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits

    def _wait(self, hits: deque[float], now: float) -> int | None:
        if len(hits) < self.limit:
            return None
        return max(1, math.ceil(hits[0] + self.window_s - now))

    def blocked(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None (counts nothing)."""
        with self._lock:
            now = self.clock()
            return self._wait(self._recent(key, now), now)

    def hit(self, key: str) -> int | None:
        """Count one hit; the seconds to wait when it is over the limit (then not counted)."""
        with self._lock:
            now = self.clock()
            hits = self._recent(key, now)
            wait = self._wait(hits, now)
            if wait is None:
                hits.append(now)
            return wait
