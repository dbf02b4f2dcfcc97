"""Parse a whole number a guest or operator typed, accepting ASCII digits only.

Why not ``str.isdigit()`` + ``int()``: ``isdigit`` is true for "²" and "①", which ``int`` then
rejects with a ValueError (an HTTP 500), and ``int`` itself accepts Arabic-Indic, Devanagari
and full-width digits, spaces, "+" and underscores. A parameter either is plain ASCII digits in
range or is refused with a 400 that names it. Every route and the effect parameters use this.
"""

from __future__ import annotations

import re

from appliance.errors import UserFacingError

_ASCII_DIGITS = re.compile(r"[0-9]{1,9}", re.ASCII)  # nine digits: no huge-int parsing cost


def parse_ascii_int(raw: object, name: str, low: int, high: int) -> int:
    """``raw`` (a string of ASCII digits, or an int) as an int in ``low..high``.

    Anything else (a sign, spaces, non-ASCII digits, a bool, a float) is a ``bad_<name>``
    UserFacingError with status 400 whose message names the parameter and its range.
    """
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _ASCII_DIGITS.fullmatch(raw):
        value = int(raw)
    if value is None or not low <= value <= high:
        raise UserFacingError(
            f"bad_{name}", f"'{name}' must be a whole number from {low} to {high}, written "
            "with the digits 0-9.", status=400, remedy=f"Send {name}={low}..{high}.")
    return value
