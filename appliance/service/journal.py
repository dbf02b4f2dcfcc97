"""Audit events to journald as structured fields, when the service runs under systemd.

Why structured fields: an operator (or an inspector) can ask the journal for exactly the events
of one job (``journalctl EPHEMERA_EVENT=job_deleted JOB_ID=...``) without parsing text. The
fields come only from ``appliance.audit``'s record, which admits short scalars and refuses
bytes and arrays, so no image data can reach the journal by this path. A booth keeps its journal
in RAM (``Storage=volatile``, written by provisioning).

Outside systemd (no ``JOURNAL_STREAM``) nothing is added: the JSON lines on stderr remain.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from appliance.audit import LOGGER_NAME

JournalSend = Callable[..., Any]
SYSLOG_IDENTIFIER = "ephemera"
# Audit record keys that have a well-known journal field of their own.
NAMED_FIELDS = {"event": "EPHEMERA_EVENT", "job_id": "JOB_ID", "reason": "REASON"}
PRIORITY_INFO, PRIORITY_NOTICE = 6, 5
NOTICE_EVENTS = frozenset({"request_refused", "store_purged", "job_failed"})


def journal_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """The journal fields of one audit record: named fields, the rest as ``EPHEMERA_<KEY>``."""
    event = str(record["event"])
    fields = {"MESSAGE": f"audit {event}", "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
              "PRIORITY": str(PRIORITY_NOTICE if event in NOTICE_EVENTS else PRIORITY_INFO)}
    for key, value in record.items():
        if key == "ts":
            continue
        name = NAMED_FIELDS.get(key) or "EPHEMERA_" + re.sub(r"[^A-Z0-9_]", "_", key.upper())
        fields[name] = "" if value is None else str(value)
    if "JOB_ID" in fields:
        fields["MESSAGE"] += f" job {fields['JOB_ID']}"
    if fields.get("REASON"):
        fields["MESSAGE"] += f" ({fields['REASON']})"
    return fields


class JournalAuditHandler(logging.Handler):
    """Forwards each audit record (a JSON line from ``appliance.audit``) to journald."""

    def __init__(self, send: JournalSend) -> None:
        super().__init__(level=logging.INFO)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            audit_record = json.loads(record.getMessage())
            self._send(**journal_fields(audit_record))
        except Exception:
            self.handleError(record)


def under_journald(env: Mapping[str, str] | None = None) -> bool:
    """systemd connects stdout/stderr to the journal and says so in ``JOURNAL_STREAM``."""
    return bool((os.environ if env is None else env).get("JOURNAL_STREAM"))


def install_journal_audit(send: JournalSend | None = None,
                          env: Mapping[str, str] | None = None) -> JournalAuditHandler | None:
    """Attach the handler to the audit logger when under journald (or when ``send`` is given).

    Returns None, changing nothing, where there is no journal or no systemd-python.
    """
    if send is None:
        if not under_journald(env):
            return None
        try:
            journal = importlib.import_module("systemd.journal")
        except ImportError:
            return None
        send = journal.send
        # The JSON line on stderr would reach the journal too: once, structured, is enough.
        logging.getLogger(LOGGER_NAME).propagate = False
    logger = logging.getLogger(LOGGER_NAME)
    for existing in logger.handlers:
        if isinstance(existing, JournalAuditHandler):
            return existing
    handler = JournalAuditHandler(send)
    logger.addHandler(handler)
    return handler
