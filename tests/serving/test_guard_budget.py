"""The serving guard's admission rules, driven directly (a LAN address cannot be made on this
machine's loopback): per-address body limit, the LAN's share of the body budget and the
kiosk's reserve, the prefetched body's WSGI input and its adoption by a job."""

from __future__ import annotations

import pytest

from appliance.secure.buffers import REGISTRY
from appliance.web.guarded_worker import (
    BODY_OWNER_PREFIX,
    GuardedThreadWorker,
    Intake,
    PrefetchedBody,
    ServingLimits,
    _RefusedError,
    adopt_request_body,
    is_kiosk,
)

LIMITS = ServingLimits(body_budget_bytes=1000, kiosk_reserve_bytes=400,
                       max_bodies_per_address=2)


class Guard(GuardedThreadWorker):
    limits = LIMITS

    def __init__(self) -> None:  # no gunicorn arbiter: only the budget state
        self.intakes, self.per_address, self.bodies_per_address = {}, {}, {}
        import threading
        self.budget_lock = threading.Lock()
        self.bytes_total = self.bytes_lan = 0


def intake(address: str) -> Intake:
    return Intake(conn=None, address=address, kiosk=is_kiosk(address),  # type: ignore[arg-type]
                  started=0.0, head=bytearray(1))


def status_of(refused: pytest.ExceptionInfo[_RefusedError]) -> int:
    return int(refused.value.answer.split(b" ", 2)[1])


def test_is_kiosk_means_loopback_only() -> None:
    assert is_kiosk("127.0.0.1") and is_kiosk("::1") and is_kiosk("::ffff:127.0.0.1")
    assert not is_kiosk("192.168.4.20") and not is_kiosk("") and not is_kiosk("fe80::1%wlan0")


def test_a_lan_device_gets_two_bodies_and_the_lan_cannot_take_the_kiosk_reserve() -> None:
    guard = Guard()
    phone = [intake("192.168.4.20") for _ in range(3)]
    guard._reserve(phone[0], 100)
    guard._reserve(phone[1], 100)
    with pytest.raises(_RefusedError) as refused:
        guard._reserve(phone[2], 100)
    assert status_of(refused) == 429 and b"too_many_uploads" in refused.value.answer
    other = intake("192.168.4.21")
    guard._reserve(other, 400)  # the LAN now holds 600 of its 600
    with pytest.raises(_RefusedError) as refused:
        guard._reserve(intake("192.168.4.22"), 1)
    assert status_of(refused) == 503 and b"retry_after_s" in refused.value.answer
    kiosk = intake("127.0.0.1")
    guard._reserve(kiosk, 400)  # the reserve is there for the kiosk
    with pytest.raises(_RefusedError):
        guard._reserve(intake("127.0.0.1"), 1)
    for done in (phone[0], phone[1], other, kiosk):
        guard._unreserve(done)
    assert (guard.bytes_total, guard.bytes_lan, guard.bodies_per_address) == (0, 0, {})


def test_a_prefetched_body_is_read_in_place_or_adopted_whole() -> None:
    buffer = REGISTRY.allocate(10, owner=BODY_OWNER_PREFIX + "x", label="request-body")
    buffer.view()[:] = range(10)
    body = PrefetchedBody(buffer)
    target = bytearray(4)
    assert body.readinto(target) == 4 and target == bytes(range(4))
    assert adopt_request_body({"wsgi.input": body}, 10, "job") is None  # partly read
    fresh = PrefetchedBody(buffer)
    assert adopt_request_body({"wsgi.input": fresh}, 9, "job") is None  # another length
    adopted = adopt_request_body({"wsgi.input": fresh}, 10, "job")
    assert adopted is buffer and buffer.owner == "job" and fresh.readinto(target) == 0
    REGISTRY.release_owner("job")
    assert buffer.released
