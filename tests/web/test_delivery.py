"""The result body: streams a secure buffer in chunks and leaves zeros behind when closed."""

from __future__ import annotations

import numpy as np

from appliance.secure.buffers import REGISTRY
from appliance.web.delivery import SecureBody


def test_streams_every_byte_then_wipes_chunks_and_releases_the_plaintext() -> None:
    data = np.random.default_rng(5).integers(0, 256, 200_001, dtype=np.uint8)
    plaintext = REGISTRY.allocate(data.size, owner="delivery-test")
    plaintext.view()[:] = data
    body = SecureBody(plaintext, chunk_size=65_536)
    assert len(body) == data.size
    received = bytearray()
    chunks = []
    for chunk in body:
        received += chunk
        chunks.append(chunk)
    assert bytes(received) == data.tobytes()
    # One object per chunk size is reused in place: no pile of immutable copies.
    assert len({id(c) for c in chunks}) <= 3
    body.close()
    assert all(not any(c) for c in chunks if len(c) > 1)
    assert plaintext.released and REGISTRY.live("delivery-test") == []


def test_empty_and_one_byte_tails() -> None:
    for size in (1, 65_537):
        plaintext = REGISTRY.allocate(size, owner="delivery-test")
        plaintext.view()[:] = 7
        body = SecureBody(plaintext, chunk_size=65_536)
        assert b"".join(bytes(c) for c in body) == bytes([7]) * size
        body.close()
        assert plaintext.released
