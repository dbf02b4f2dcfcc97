"""The audit log: what happened to jobs, never what was in them.

Why a fixed list of events and JSON lines: an operator (or an inspector) must be able to see that
consent was given, that a job was deleted or expired and that the store was purged, without the
log itself becoming a record of guests. Only the fields passed here are written, so a caller
cannot leak a file name or a pixel by accident: values must be short scalars (ids, counts,
reasons), and bytes-like or array values are refused outright.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any

LOGGER_NAME = "ephemera.audit"
EVENTS = frozenset({
    "job_created", "consent_given", "job_deleted", "job_expired", "store_purged",
    "request_refused", "job_failed",
    "photo_received", "photo_deleted", "photo_expired", "session_deleted",
    "admin_login", "admin_login_refused", "retention_changed", "self_test",
})
RING_SIZE = 1000
MAX_TEXT = 200  # a reason or an id, never a payload

_logger = logging.getLogger(LOGGER_NAME)
_ring: deque[dict[str, Any]] = deque(maxlen=RING_SIZE)
_ring_lock = threading.Lock()


def _clean(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"audit field {name!r} is {len(value)} characters; the audit log "
                             f"takes short ids and reasons only (at most {MAX_TEXT})")
        return value
    raise TypeError(f"audit field {name!r} has type {type(value).__name__}; only str, int, "
                    "float, bool and None are allowed (never image data)")


def audit(event: str, **fields: Any) -> dict[str, Any]:
    """Record one event as a JSON line on the ``ephemera.audit`` logger and in the ring."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}; known: {', '.join(sorted(EVENTS))}")
    record: dict[str, Any] = {"ts": round(time.time(), 3), "event": event}
    for name, value in fields.items():
        if name in record:
            raise ValueError(f"audit field {name!r} is reserved")
        record[name] = _clean(name, value)
    with _ring_lock:
        _ring.append(record)
    _logger.info(json.dumps(record, sort_keys=True))
    return record


def recent(n: int = 100) -> list[dict[str, Any]]:
    """The last ``n`` events, oldest first (for the admin page)."""
    with _ring_lock:
        items = list(_ring)
    return [dict(item) for item in items[-n:]] if n > 0 else []


def clear() -> None:
    """Forget the in-memory ring (tests; a purge keeps it: purges are themselves events)."""
    with _ring_lock:
        _ring.clear()
