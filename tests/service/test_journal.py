"""Audit events reach journald as structured fields (EPHEMERA_EVENT, JOB_ID, REASON), never
image data; outside systemd nothing is installed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from appliance.audit import LOGGER_NAME, audit
from appliance.service.journal import (
    JournalAuditHandler,
    install_journal_audit,
    journal_fields,
)


def test_fields_of_an_event() -> None:
    fields = journal_fields({"ts": 1.0, "event": "job_deleted", "job_id": "j-1",
                             "reason": "owner", "bytes_freed": 42})
    assert fields == {"MESSAGE": "audit job_deleted job j-1 (owner)",
                      "SYSLOG_IDENTIFIER": "ephemera", "PRIORITY": "6",
                      "EPHEMERA_EVENT": "job_deleted", "JOB_ID": "j-1", "REASON": "owner",
                      "EPHEMERA_BYTES_FREED": "42"}
    assert journal_fields({"event": "request_refused", "reason": "not_on_lan"})[
        "PRIORITY"] == "5"


def test_audit_events_are_sent_with_their_fields() -> None:
    sent: list[dict[str, Any]] = []
    logger = logging.getLogger(LOGGER_NAME)
    handler = install_journal_audit(send=lambda **kw: sent.append(kw))
    assert isinstance(handler, JournalAuditHandler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        audit("consent_given", job_id="abc123")
        with pytest.raises(TypeError, match="never image data"):
            audit("job_created", job_id="x", pixels=b"\xff\xd8\xff")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(sent) == 1
    assert sent[0]["EPHEMERA_EVENT"] == "consent_given" and sent[0]["JOB_ID"] == "abc123"


def test_nothing_is_installed_outside_systemd() -> None:
    assert install_journal_audit(env={}) is None
    assert not any(isinstance(h, JournalAuditHandler)
                   for h in logging.getLogger(LOGGER_NAME).handlers)
