"""The operator's PIN: attempts, lock-out, and short-lived admin sessions.

Why per address with a doubling lock-out: a 6-digit PIN falls to a few thousand guesses, so
after ``MAX_WRONG`` wrong PINs an address waits ``FIRST_LOCK_S`` seconds, and each further
lock-out doubles it (30 s, 60 s, 120 s, ...): a guesser on the LAN gets a handful of tries an
hour while the operator at the kiosk (another address) is not locked out by them. The PIN is
checked against the scrypt hash in ``admin.pin_hash`` (``ephemera admin-pin``). An admin session
is a 256-bit random token in a cookie; it expires ``SESSION_S`` after it was opened, whatever
happens meanwhile.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import UserFacingError
from appliance.secure.pin import verify_pin

MAX_WRONG = 5
FIRST_LOCK_S = 30.0
SESSION_S = 10 * 60.0
MAX_SESSIONS = 8


@dataclass
class _Attempts:
    wrong: int = 0
    lockouts: int = 0
    locked_until: float = 0.0


class PinGuard:
    """Checks PINs and hands out admin sessions; all state in memory, gone at restart."""

    def __init__(self, pin_hash: str, *, clock: Callable[[], float] = time.monotonic,
                 session_s: float = SESSION_S) -> None:
        self.pin_hash = pin_hash
        self.clock = clock
        self.session_s = session_s
        self._attempts: dict[str, _Attempts] = {}
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.pin_hash)

    def login(self, address: str, pin: str) -> str:
        """A new session token for the right PIN; 429 while locked out, 403 for a wrong PIN."""
        if not self.enabled:
            raise UserFacingError("admin_disabled", "No operator PIN is set on this booth.",
                                  status=403, remedy="Run `ephemera admin-pin` on the booth.")
        now = self.clock()
        with self._lock:
            state = self._attempts.setdefault(address, _Attempts())
            if state.locked_until > now:
                raise _locked(state.locked_until - now)
        right = verify_pin(pin, self.pin_hash) if pin.isascii() and pin.isdigit() else False
        with self._lock:
            if not right:
                state.wrong += 1
                if state.wrong >= MAX_WRONG:
                    state.lockouts += 1
                    state.wrong = 0
                    state.locked_until = now + FIRST_LOCK_S * 2 ** (state.lockouts - 1)
                    raise _locked(state.locked_until - now)
                raise UserFacingError("wrong_pin", "That PIN is not right.", status=403,
                                      remedy=f"Try again ({MAX_WRONG - state.wrong} tries before "
                                      "a pause).")
            self._attempts.pop(address, None)
            self._expire(now)
            while len(self._sessions) >= MAX_SESSIONS:  # the oldest session goes
                self._sessions.pop(min(self._sessions, key=self._sessions.__getitem__))
            token = secrets.token_urlsafe(32)
            self._sessions[token] = now + self.session_s
            return token

    def check(self, token: str | None) -> bool:
        """Whether ``token`` is an admin session that has not expired."""
        if not token:
            return False
        now = self.clock()
        with self._lock:
            self._expire(now)
            for known in self._sessions:
                if secrets.compare_digest(known, token):
                    return True
        return False

    def logout(self, token: str | None) -> None:
        with self._lock:
            if token:
                self._sessions.pop(token, None)

    def _expire(self, now: float) -> None:
        for token, until in list(self._sessions.items()):
            if until <= now:
                del self._sessions[token]


def _locked(seconds: float) -> UserFacingError:
    wait = max(1, math.ceil(seconds))
    return UserFacingError("pin_locked", "Too many wrong PINs: the admin page is paused.",
                           status=429, retry_after_s=wait,
                           remedy=f"Wait {wait} seconds before the next try.")
