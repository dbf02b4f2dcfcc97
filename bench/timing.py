"""The one timing helper the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], runs: int, warm_up: int = 0) -> float:
    """The median wall time of ``runs`` calls of ``fn``, in milliseconds, after ``warm_up``
    untimed calls."""
    for _ in range(warm_up):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)
