"""Cheap memory bombs under the pixel limit are refused from their headers, and decoded pixels
across all requests stay under the decoded-bytes budget (429 busy, after a short wait)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from appliance.errors import UserFacingError
from appliance.media.budget import DecodedBytesBudget
from appliance.media.decode import decode_cost, decode_image, read_header
from appliance.secure.buffers import REGISTRY
from tests import media_fixtures as fx
from tests.helpers.images import _chunk


def flat_png(width: int, height: int) -> bytes:
    """A valid all-zero RGB PNG compressed as far as zlib goes (about 117 KB at 9999 x 4000)."""
    import struct
    squeeze = zlib.compressobj(9)
    row = b"\0" * (width * 3 + 1)
    rows = b"".join([squeeze.compress(row) for _ in range(height)] + [squeeze.flush()])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
            + _chunk(b"IEND", b""))


def refused_code(data: bytes, budget: DecodedBytesBudget | None = None) -> str:
    with pytest.raises(UserFacingError) as caught:
        decode_image(memoryview(data), "bomb-test", budget=budget)
    assert REGISTRY.live("bomb-test") == []
    return caught.value.code


def test_a_small_jpeg_claiming_40_megapixels_is_refused_before_decoding() -> None:
    bomb = fx.jpeg_with_sof(fx.jpeg(), size=(9000, 4400))  # inside max_pixels and max_side
    assert len(bomb) < 100_000
    assert refused_code(bomb) == "decompression_bomb"


def test_an_all_zero_png_under_the_pixel_limit_is_refused_before_decoding() -> None:
    bomb = flat_png(9999, 4000)
    assert len(bomb) < 150_000
    assert refused_code(bomb) == "decompression_bomb"


def test_an_ordinary_photo_still_decodes() -> None:
    data = fx.jpeg(fx.photo(600, 800))
    buffer, bgr = decode_image(memoryview(data), "plain")
    assert bgr.shape == (600, 800, 3)
    buffer.release()


def test_decodes_wait_for_room_then_get_429_and_buffers_give_it_back() -> None:
    data = fx.jpeg(fx.photo(600, 800))
    cost = decode_cost(read_header(memoryview(data)))
    kept = 600 * 800 * 3
    budget = DecodedBytesBudget(capacity=cost + kept // 2, wait_s=0.2)
    first, _bgr = decode_image(memoryview(data), "guest-1", budget=budget)
    assert budget.used == kept == budget.held("guest-1")
    assert refused_code(data, budget) == "busy"
    first.release()  # its job let go of the photo
    assert budget.used == 0
    second, _bgr = decode_image(memoryview(data), "guest-2", budget=budget)
    second.release()
    assert budget.used == 0


def test_a_failed_decode_gives_back_its_whole_reservation() -> None:
    budget = DecodedBytesBudget(capacity=64 << 20, wait_s=0.1)
    data = fx.jpeg(fx.photo(600, 800))
    with pytest.raises(UserFacingError):
        decode_image(memoryview(data[: len(data) // 2]), "cut", budget=budget)
    assert budget.used == 0


def test_decode_cost_covers_what_the_decoder_holds() -> None:
    header = read_header(memoryview(fx.jpeg(fx.photo(600, 800), orientation=6)))
    assert decode_cost(header) == 600 * 800 * 3 * 3  # decoder's array, our copy, rotated copy
    assert np.prod((600, 800, 3)) * 3 == decode_cost(header)
