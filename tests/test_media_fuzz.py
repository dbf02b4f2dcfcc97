"""Damaged uploads (random bytes changed, cut anywhere) never crash the decoder: each one decodes
or gets a UserFacingError, and either way no secure buffer of the job is left behind."""

from __future__ import annotations

import uuid

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.errors import UserFacingError
from appliance.media.decode import ImageLimits, decode_image
from appliance.secure.buffers import REGISTRY
from tests import media_fixtures as fx

_NOISE = np.random.default_rng(21).integers(0, 256, (24, 32, 3), dtype=np.uint8)
SEEDS = {
    "jpeg": fx.jpeg(_NOISE, orientation=6),
    "png": fx.png(_NOISE, orientation=3),
    "webp": fx.webp(_NOISE, orientation=8),
    "webp-lossy": fx.webp(_NOISE, lossless=False),
}
LIMITS = ImageLimits(max_pixels=1_000_000, max_side=4000)  # keep damaged headers cheap
CODES = {"not_an_image", "unsupported_format", "truncated_image", "too_many_bytes",
         "too_many_pixels", "decompression_bomb", "unsupported_mode"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(SEEDS)),
       edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 4000)))
def test_damaged_uploads_decode_or_fail_cleanly(seed: str, edits: list[tuple[int, int]],
                                               cut: int | None) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    if cut is not None:
        del data[cut:]
    owner = f"fuzz-{uuid.uuid4().hex}"
    try:
        buffer, bgr = decode_image(memoryview(data), owner, LIMITS)
    except UserFacingError as error:
        assert error.code in CODES and 400 <= error.status < 500
        assert REGISTRY.live(owner) == []
    else:
        assert REGISTRY.live(owner) == [buffer]
        assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3
        REGISTRY.release_owner(owner)
