"""The job queue: the guest at the kiosk first, phones in arrival order, positions known.

Why: with one worker thread and guests' phones on the LAN, ten phones could otherwise fill the
queue ahead of the guest standing at the booth. Kiosk jobs run before waiting phone jobs, and
admission (``JobManager.create_job``) keeps one place of the queue free for the kiosk. Each
waiting job knows its position, which its status shows to the guest.
"""

from __future__ import annotations

import threading
from collections import deque


class FairQueue:
    """A blocking queue of job ids with two lanes; ``None`` stops the consumer."""

    def __init__(self) -> None:
        self._kiosk: deque[str] = deque()
        self._phones: deque[str] = deque()
        self._stopping = False
        self._ready = threading.Condition()

    def put(self, job_id: str | None, *, kiosk: bool = False) -> None:
        with self._ready:
            if job_id is None:
                self._stopping = True
            else:
                (self._kiosk if kiosk else self._phones).append(job_id)
            self._ready.notify()

    def get(self) -> str | None:
        """The next job id (kiosk first); None once stopped and nothing is left to hand out."""
        with self._ready:
            while not (self._kiosk or self._phones or self._stopping):
                self._ready.wait()
            if self._kiosk:
                return self._kiosk.popleft()
            if self._phones:
                return self._phones.popleft()
            return None

    def position(self, job_id: str) -> int | None:
        """1 for the next job to run, 2 after it, ...; None when it is not waiting."""
        with self._ready:
            order = list(self._kiosk) + list(self._phones)
        return order.index(job_id) + 1 if job_id in order else None

    def discard(self, job_id: str) -> None:
        """Forget a waiting job (released before it ran)."""
        with self._ready:
            for lane in (self._kiosk, self._phones):
                if job_id in lane:
                    lane.remove(job_id)
