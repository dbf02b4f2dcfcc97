"""Phone uploads may hold only a few threads; the kiosk is never refused for them."""

from __future__ import annotations

import contextlib

import pytest

from appliance.errors import UserFacingError
from appliance.web.upload_slots import UploadSlots


def test_a_third_phone_upload_is_told_to_retry_and_the_kiosk_is_not() -> None:
    slots = UploadSlots(2)
    with contextlib.ExitStack() as held:
        held.enter_context(slots.held(lan=True))
        held.enter_context(slots.held(lan=True))
        with pytest.raises(UserFacingError) as busy:
            held.enter_context(slots.held(lan=True))
        assert (busy.value.code, busy.value.status) == ("busy", 503)
        assert busy.value.retry_after_s is not None and busy.value.retry_after_s >= 1
        with slots.held(lan=False), slots.held(lan=False):
            pass  # the kiosk: no limit
    with slots.held(lan=True):  # released slots are free again
        pass
