"""The operator PIN, stored only as an scrypt hash.

Why scrypt with a per-PIN salt: the configuration file is readable by the service and may be
copied off a booth for support; a bare or fast-hashed six-digit PIN falls to a laptop in
seconds, scrypt's memory cost makes each guess expensive. The format is self-describing so the
cost can be raised later without breaking PINs already set:

    scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>
"""

from __future__ import annotations

import base64
import hmac
import os
import re

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

PREFIX = "scrypt"
LOG2_N = 15  # n = 32768: ~32 MiB and a few tens of milliseconds per guess on an Orin core
R = 8
P = 1
SALT_BYTES = 16
HASH_BYTES = 32
PIN_PATTERN = re.compile(r"[0-9]{6,12}")


class PinError(ValueError):
    """The PIN or its stored hash is not acceptable; the message says what is."""


def check_pin(pin: str) -> str:
    """The PIN if it is 6 to 12 ASCII digits; PinError otherwise."""
    if not PIN_PATTERN.fullmatch(pin):
        raise PinError("the admin PIN must be 6 to 12 digits (0-9)")
    return pin


def _derive(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=HASH_BYTES, n=1 << log2_n, r=r, p=p).derive(pin.encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``pin`` (a fresh random salt unless one is given)."""
    check_pin(pin)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _derive(pin, salt, LOG2_N, R, P)
    return "$".join((PREFIX, str(LOG2_N), str(R), str(P), _b64(salt), _b64(digest)))


def parse_pin_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(log2 n, r, p, salt, hash) of a stored PIN hash; PinError if it is not one."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != PREFIX or not all(x.isdigit() for x in parts[1:4]):
        raise PinError("not a PIN hash made by `ephemera admin-pin` "
                       "(scrypt$<log2 n>$<r>$<p>$<salt>$<hash>)")
    log2_n, r, p = (int(x) for x in parts[1:4])
    if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise PinError(f"PIN hash cost out of range (log2 n={log2_n}, r={r}, p={p})")
    try:
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(
            parts[5], validate=True)
    except ValueError:
        raise PinError("PIN hash salt or hash is not valid base64") from None
    return log2_n, r, p, salt, digest


def verify_pin(pin: str, stored: str) -> bool:
    """True when ``pin`` is the PIN behind ``stored``; compared in constant time."""
    log2_n, r, p, salt, digest = parse_pin_hash(stored)
    if not PIN_PATTERN.fullmatch(pin):
        return False
    return hmac.compare_digest(_derive(pin, salt, log2_n, r, p), digest)
