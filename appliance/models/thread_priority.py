"""Model work yields the CPU to the pages: ONNX Runtime's pool and the job thread run niced.

Why: on a small board the models can take every core, and a guest's page, a status answer or a
stream's first event then waits behind them (on the shared 2-core development machine the page
p95 under 32 phones was 170-320 ms at equal priority). Linux's nice value is per thread
(``setpriority`` with a thread id) and a new thread inherits its creator's, so the threads
ONNX Runtime starts while a session opens are lowered right after they appear, and the job
worker lowers itself. Request threads keep the default: a page, a status or an upload's decode
is small and short, and the scheduler then gives it the core first. The model threads lose
nothing when the pages are idle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("ephemera.models")
TASKS = Path("/proc/self/task")


def _thread_ids() -> set[int]:
    try:
        return {int(entry.name) for entry in TASKS.iterdir() if entry.name.isdigit()}
    except OSError:
        return set()


def _lower(thread_id: int, nice: int) -> None:
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, max(current, nice))
    except OSError as exc:  # the thread ended meanwhile, or no permission: never fatal
        log.debug("could not lower thread %d to nice %d: %s", thread_id, nice, exc)


def lower_current_thread(nice: int) -> None:
    """This thread (and every thread it starts later) at ``nice`` or lower; 0 leaves it."""
    if nice > 0:
        _lower(threading.get_native_id(), nice)


@contextlib.contextmanager
def threads_started_here_lowered(nice: int) -> Iterator[None]:
    """Every thread that appears in the process during the block is lowered to ``nice``."""
    before = _thread_ids() if nice > 0 else set()
    try:
        yield
    finally:
        if nice > 0:
            # Not a Python thread started meanwhile elsewhere (a request thread must keep its
            # priority): only the threads the native library made.
            ours = {thread.native_id for thread in threading.enumerate()}
            for thread_id in _thread_ids() - before - ours:
                _lower(thread_id, nice)
