"""Raw frames from a pipe into secure buffers, double-buffered.

Why two buffers per stream: the reader fills the back buffer with ``readinto`` (no copy through
``bytes``, nothing on the heap) while a capture or a preview copies from the front one; a swap
under the lock publishes a whole frame, never half of one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from appliance.secure.buffers import REGISTRY, SecureBuffer


def row_stride(width: int) -> int:
    """GStreamer aligns each row of packed RGB/BGR video to 4 bytes."""
    return (width * 3 + 3) & ~3


class FrameSlot:
    """The latest complete frame of one stream, with a sequence number to wait on."""

    def __init__(self, width: int, height: int, label: str) -> None:
        self.width = width
        self.height = height
        self.stride = row_stride(width)
        self.frame_bytes = self.stride * height
        self._front = REGISTRY.allocate(self.frame_bytes, owner="camera", label=label)
        self._back = REGISTRY.allocate(self.frame_bytes, owner="camera", label=label)
        self.cond = threading.Condition()
        self.seq = 0
        self.at = 0.0
        self.broken = ""  # set when the stream ended: waiters give up at once

    def read_from(self, stream: Any) -> bool:
        """Fill the back buffer with one whole frame from ``stream``; False at end of stream."""
        view = self._back.memoryview()
        got = 0
        try:
            while got < self.frame_bytes:
                count = stream.readinto(view[got:])
                if not count:
                    return False
                got += count
        finally:
            view.release()
        with self.cond:
            self._front, self._back = self._back, self._front
            self.seq += 1
            self.at = time.monotonic()
            self.cond.notify_all()
        return True

    def pixels(self, buffer: SecureBuffer) -> np.ndarray:
        base = buffer.view(np.uint8, (self.frame_bytes,))
        return np.lib.stride_tricks.as_strided(
            base, shape=(self.height, self.width, 3), strides=(self.stride, 3, 1),
            writeable=False)

    def wait_newer(self, seq: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.seq > seq or bool(self.broken), timeout)

    def copy_latest(self, out: np.ndarray) -> None:
        """Copy the front frame into ``out`` (H x W x 3) under the lock."""
        with self.cond:
            np.copyto(out, self.pixels(self._front))

    def mark_broken(self, reason: str) -> None:
        with self.cond:
            self.broken = reason
            self.cond.notify_all()

    def release(self) -> None:
        with self.cond:
            self._front.release()
            self._back.release()
            self.broken = "closed"
            self.cond.notify_all()
