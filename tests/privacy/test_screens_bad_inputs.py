"""The guest screens' own requests (consent, hand-off, take-away, wipe) against bad and foreign
input, through HTTP to the real service: each gets its 4xx JSON error naming the problem and a
remedy; a kiosk's hand-off cannot be read or joined twice; one session cannot take away, hand
over or wipe another's job; afterwards the store is empty and the memory scan finds nothing of
the photos."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import service as svc
from tests.helpers.images import encode, png_chunk_span, with_canary
from tests.helpers.memscan import Canary, encoded_patterns, process_tree, scan

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def post(service: svc.Service, path: str, body: Any = None, token: str | None = None,
         raw: bytes | None = None) -> svc.Reply:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return service.request("POST", path, data, headers)


def expect(reply: svc.Reply, status: int, code: str) -> None:
    assert reply.status == status, (code, reply.status, reply.body[:300])
    body = reply.json()
    assert body["error"] == code and body["message"] and body.get("remedy"), body
    assert reply.headers["cache-control"] == "no-store"


def test_screens_refuse_bad_and_foreign_input(service: svc.Service) -> None:
    canary = Canary.random(seed=53)
    png = encode(with_canary(canary), ".png")
    start, end = png_chunk_span(png)
    patterns = {**encoded_patterns(png, start, end), **canary.pixel_patterns()}

    # Consent must be the attestation, from a known screen.
    expect(post(service, "/ui/consent", {"screen": "kiosk"}), 400, "consent_required")
    expect(post(service, "/ui/consent", {"screen": "tv", "attestation": "adults-consenting"}),
           400, "consent_required")
    expect(post(service, "/ui/consent", raw=b"{not json"), 400, "bad_request")
    expect(post(service, "/ui/consent", raw=b"[1, 2]"), 400, "bad_request")
    expect(post(service, "/ui/consent", raw=b"x" * 5000), 413, "too_many_bytes")
    assert post(service, "/ui/consent", {"screen": "phone",
                                         "attestation": "adults-consenting"}).status == 200

    # Hand-off: an unknown effect, a wrong secret, a wrong code, a second join.
    expect(post(service, "/ui/handoff", {"effect": "nope"}), 400, "unknown_effect")
    expect(post(service, "/ui/handoff", {}), 400, "bad_request")
    opened = post(service, "/ui/handoff", {"effect": "faces"}).json()
    assert opened["qr_svg"].startswith("<svg") and "#" in opened["link"]
    code = opened["link"].split("#", 1)[1]
    expect(service.get(f"/ui/handoff/{opened['handoff_id']}", "not-the-secret"), 404,
           "handoff_expired")
    expect(service.get(f"/ui/handoff/{opened['handoff_id']}"), 404, "handoff_expired")
    expect(post(service, "/ui/handoff/join", {"code": "guessed"}), 404, "handoff_expired")
    assert post(service, "/ui/handoff/join", {"code": code}).json() == {"effect": "faces"}
    expect(post(service, "/ui/handoff/join", {"code": code}), 404, "handoff_expired")
    assert service.get(f"/ui/handoff/{opened['handoff_id']}",
                       opened["secret"]).json() == {"state": "joined"}

    # Two guests: neither can reach the other's job through the screens' requests.
    _photo_a, job_a, token_a = service.photo_job(png)
    _photo_b, job_b, token_b = service.photo_job(png)
    service.wait_for_job(job_a, token_a)
    service.wait_for_job(job_b, token_b)
    expect(post(service, f"/ui/take-away/{job_a}", token=token_b), 404, "job_not_found")
    expect(post(service, f"/ui/take-away/{job_a}"), 401, "token_required")
    expect(post(service, f"/ui/take-away/{job_a}?output=../../etc", token=token_a), 404,
           "output_not_found")
    expect(post(service, "/ui/handoff/deliver", {"code": code, "job_id": job_a}, token_b), 404,
           "job_not_found")
    expect(post(service, "/ui/handoff/deliver", {"code": "guessed", "job_id": job_b}, token_b),
           404, "handoff_expired")
    expect(post(service, "/ui/forget"), 401, "token_required")
    expect(post(service, "/ui/forget", token="forged-token"), 403, "token_invalid")

    # Each guest wipes their own: a receipt of what was theirs, then the token is dead.
    for token in (token_a, token_b):
        wiped = post(service, "/ui/forget", token=token).json()
        assert (wiped["photos"], wiped["results"]) == (1, 1)
        assert wiped["receipt"]["payload"]["keys"] == 2
        expect(post(service, "/ui/forget", token=token), 403, "token_invalid")
    assert service.store_files() == []
    found = scan(process_tree(service.pid), patterns)
    assert not {name: n for name, n in found.counts.items() if n}
