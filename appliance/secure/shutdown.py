"""Wipe everything on SIGTERM and SIGINT, then let the previous handler (gunicorn's) run.

Why chain instead of replace: gunicorn's worker installs its own SIGTERM/SIGINT handlers for a
graceful or quick exit; replacing them would break its shutdown. So our handler first releases
every secure buffer (``REGISTRY.release_all``) and runs the registered wipe callbacks (such as a
store purge), then calls the handler that was there before, or exits with 128+signal when there
was none (or it was the default action), so the process dies exactly as it would have.

A callback that fails is skipped (the wipe of the others matters more than an error message).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from appliance.secure.buffers import REGISTRY

WipeCallback = Callable[[], Any]
SIGNALS = (signal.SIGTERM, signal.SIGINT)

_callbacks: list[WipeCallback] = []
_previous: dict[int, Any] = {}
_lock = threading.RLock()


def register_wipe(callback: WipeCallback) -> WipeCallback:
    """Run ``callback`` when the process is told to stop (before the buffers are released)."""
    with _lock:
        if callback not in _callbacks:
            _callbacks.append(callback)
    return callback


def unregister_wipe(callback: WipeCallback) -> None:
    with _lock:
        if callback in _callbacks:
            _callbacks.remove(callback)


def wipe_everything() -> int:
    """Run every wipe callback, then release every secure buffer; returns buffers released."""
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        with contextlib.suppress(Exception):
            callback()
    return REGISTRY.release_all()


def _handler(signum: int, frame: FrameType | None) -> None:
    wipe_everything()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # SIG_DFL or unknown: behave like the default action, with the conventional exit status.
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    sys.exit(128 + signum)


def install_shutdown_wipe(*callbacks: WipeCallback) -> None:
    """Install the wipe handler for SIGTERM and SIGINT (main thread only). Idempotent.

    Call it after the server installed its own handlers (in gunicorn: in ``post_worker_init``
    or the app factory inside the worker) so ours runs first and then chains to theirs.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signal handlers can only be installed from the main thread")
    for callback in callbacks:
        register_wipe(callback)
    with _lock:
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current is _handler:
                continue  # already ours; keep the handler we chained to before
            _previous[signum] = current
            signal.signal(signum, _handler)


def uninstall_shutdown_wipe() -> None:
    """Put the previous handlers back and forget the callbacks (tests, re-configuration)."""
    with _lock:
        for signum, previous in list(_previous.items()):
            if signal.getsignal(signum) is _handler:
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        _previous.clear()
        _callbacks.clear()
