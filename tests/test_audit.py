"""The audit log: known events only, JSON lines on ephemera.audit, no payloads."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from appliance import audit as audit_module
from appliance.audit import audit, recent


@pytest.fixture(autouse=True)
def empty_ring() -> None:
    audit_module.clear()


def test_events_go_to_the_logger_as_json_and_to_the_ring(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ephemera.audit"):
        audit("job_created", job="j-1", effect="headshot")
        audit("consent_given", job="j-1", adults=True)
        audit("request_refused", reason="store_full", status=429)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ephemera.audit"]
    assert [line["event"] for line in lines] == ["job_created", "consent_given",
                                                 "request_refused"]
    assert lines[1]["adults"] is True and isinstance(lines[0]["ts"], float)
    assert [e["event"] for e in recent(2)] == ["consent_given", "request_refused"]
    assert recent(0) == []


def test_unknown_events_and_payload_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown audit event"):
        audit("photo_uploaded", job="j")
    with pytest.raises(TypeError, match="never image data"):
        audit("job_failed", job="j", data=b"\xff\xd8\xff")
    with pytest.raises(TypeError):
        audit("job_failed", job="j", pixels=np.zeros(3))
    with pytest.raises(ValueError, match="short ids and reasons"):
        audit("job_failed", job="j", reason="x" * 500)
    with pytest.raises(ValueError, match="reserved"):
        audit("job_failed", ts=1.0)
    assert recent() == []


def test_the_ring_is_bounded() -> None:
    for n in range(audit_module.RING_SIZE + 10):
        audit("job_expired", job=f"j-{n}")
    events = recent(10_000)
    assert len(events) == audit_module.RING_SIZE and events[-1]["job"] == f"j-{n}"
