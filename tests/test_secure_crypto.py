"""AES-256-GCM per job: round trip into secure buffers, binding to job and name, key hygiene."""

from __future__ import annotations

import uuid

import pytest

from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import (
    KEY_BYTES,
    OVERHEAD,
    DecryptionError,
    JobKey,
    associated_data,
)


def job() -> str:
    return f"job-{uuid.uuid4().hex}"


def secret_payload(owner: str, text: bytes = b"CANARY-7f3a" * 100):
    buffer = REGISTRY.allocate(len(text), owner=owner, label="payload")
    buffer.view()[:] = memoryview(text)
    return buffer


def test_round_trip_plaintext_lands_in_a_secure_buffer_of_the_job() -> None:
    owner = job()
    key = JobKey.generate(owner)
    payload = secret_payload(owner)
    blob = key.encrypt(payload.memoryview(), associated_data(owner, "result"))
    assert isinstance(blob, bytearray)
    assert len(blob) == payload.nbytes + OVERHEAD
    assert b"CANARY" not in blob
    plain = key.decrypt(blob, associated_data(owner, "result"), owner=owner)
    assert plain.owner == owner and plain.nbytes == payload.nbytes
    assert bytes(plain.view()) == bytes(payload.view())
    assert REGISTRY.release_owner(owner) == 3  # key, payload, plaintext
    assert key.released


def test_the_key_is_random_and_lives_in_a_secure_buffer_owned_by_the_job() -> None:
    owner = job()
    keys = [JobKey.generate(owner) for _ in range(3)]
    key_buffers = [b for b in REGISTRY.live(owner) if b.label == "job-key"]
    assert len(key_buffers) == 3 and all(b.nbytes == KEY_BYTES for b in key_buffers)
    values = {bytes(b.view()) for b in key_buffers}
    assert len(values) == 3 and bytes(KEY_BYTES) not in values
    for key in keys:
        key.release()
    assert REGISTRY.live(owner) == []


def test_nonces_are_fresh_for_every_blob() -> None:
    owner = job()
    key = JobKey.generate(owner)
    payload = secret_payload(owner)
    one = key.encrypt(payload.memoryview(), b"aad")
    two = key.encrypt(payload.memoryview(), b"aad")
    assert one[4:16] != two[4:16] and one != two
    REGISTRY.release_owner(owner)


@pytest.mark.parametrize("tamper", ["other_job", "other_name", "flipped_bit", "other_key",
                                    "short"])
def test_tampering_fails_authentication_and_leaves_no_plaintext_buffer(tamper: str) -> None:
    owner = job()
    key = JobKey.generate(owner)
    payload = secret_payload(owner)
    blob = key.encrypt(payload.memoryview(), associated_data(owner, "result"))
    aad = associated_data(owner, "result")
    use_key = key
    if tamper == "other_job":
        aad = associated_data(job(), "result")
    elif tamper == "other_name":
        aad = associated_data(owner, "input")
    elif tamper == "flipped_bit":
        blob[40] ^= 1
    elif tamper == "other_key":
        use_key = JobKey.generate(owner)
    elif tamper == "short":
        blob = blob[:OVERHEAD]
    before = len(REGISTRY.live(owner))
    with pytest.raises(DecryptionError):
        use_key.decrypt(blob, aad, owner=owner)
    assert len(REGISTRY.live(owner)) == before  # the unauthenticated plaintext was released
    REGISTRY.release_owner(owner)


def test_a_released_key_cannot_be_used_and_empty_plaintext_is_refused() -> None:
    owner = job()
    key = JobKey.generate(owner)
    with pytest.raises(ValueError, match="empty"):
        key.encrypt(bytearray(), b"aad")
    key.release()
    with pytest.raises(ValueError, match="released"):
        key.encrypt(bytearray(b"x"), b"aad")
