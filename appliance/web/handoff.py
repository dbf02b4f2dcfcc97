"""The kiosk-to-phone hand-off: a QR code that lets one phone upload into this kiosk's turn.

Why a hand-off record and not the session token in the QR code: a QR code on a screen can be
photographed by anyone nearby. The code in the link is a one-time capability that only lets a
phone *join* (once, within a few minutes); the phone then makes its own session by uploading,
and hands that session's token back through the record to the kiosk page that asked (which
proves itself with a second secret that never leaves the kiosk). The kiosk collects it once
and the record is gone: from then on kiosk and phone show the same job and either can wipe it.
Only SHA-256 digests of both secrets are kept; records live in memory and expire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import UserFacingError

HANDOFF_TTL_S = 300
MAX_OPEN = 16


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _expired() -> UserFacingError:
    return UserFacingError(
        "handoff_expired", "This QR code has expired or was already used.", status=404,
        remedy="Scan the QR code that the booth shows now, or start again on the booth.")


@dataclass
class Handoff:
    id: str
    effect: str
    code_digest: bytes  # what the phone holds (in the QR link)
    kiosk_digest: bytes  # what the kiosk page holds
    expires_at: float
    joined: bool = False
    session_token: str | None = None
    job_id: str | None = None

    @property
    def state(self) -> str:
        if self.session_token:
            return "ready"
        return "joined" if self.joined else "waiting"


class HandoffBoard:
    """The open hand-offs of this service (a few at most: there is one kiosk)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Handoff] = {}
        self.clock = clock

    def _sweep(self, now: float) -> None:
        for key in [k for k, h in self._open.items() if h.expires_at <= now]:
            del self._open[key]

    def open(self, effect: str) -> tuple[Handoff, str, str]:
        """A new hand-off: (record, code for the QR link, secret for the kiosk page)."""
        code, kiosk = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        with self._lock:
            now = self.clock()
            self._sweep(now)
            if len(self._open) >= MAX_OPEN:
                oldest = min(self._open.values(), key=lambda h: h.expires_at)
                del self._open[oldest.id]
            handoff = Handoff(secrets.token_hex(8), effect, _digest(code), _digest(kiosk),
                              now + HANDOFF_TTL_S)
            self._open[handoff.id] = handoff
        return handoff, code, kiosk

    def _by_code(self, code: str) -> Handoff:
        wanted = _digest(code)
        now = self.clock()
        self._sweep(now)
        for handoff in self._open.values():
            if hmac.compare_digest(handoff.code_digest, wanted):
                return handoff
        raise _expired()

    def join(self, code: str) -> Handoff:
        """The phone opened the link: the effect it is for. Only one phone joins."""
        with self._lock:
            handoff = self._by_code(code)
            if handoff.joined:
                raise _expired()
            handoff.joined = True
            return handoff

    def deliver(self, code: str, session_token: str, job_id: str) -> None:
        """The phone uploaded and started the job: hand its session to the kiosk."""
        with self._lock:
            handoff = self._by_code(code)
            if not handoff.joined or handoff.session_token:
                raise _expired()
            handoff.session_token, handoff.job_id = session_token, job_id

    def poll(self, handoff_id: str, kiosk_secret: str | None) -> dict[str, str]:
        """The kiosk's view; once ``ready`` the token and job are handed over and forgotten."""
        with self._lock:
            self._sweep(self.clock())
            handoff = self._open.get(handoff_id)
            if handoff is None or not kiosk_secret or not hmac.compare_digest(
                    handoff.kiosk_digest, _digest(kiosk_secret)):
                raise _expired()
            answer = {"state": handoff.state}
            if handoff.session_token and handoff.job_id:
                answer.update(session_token=handoff.session_token, job_id=handoff.job_id)
                del self._open[handoff_id]
            return answer

    def cancel(self, handoff_id: str, kiosk_secret: str | None) -> None:
        with self._lock:
            handoff = self._open.get(handoff_id)
            if handoff is not None and kiosk_secret and hmac.compare_digest(
                    handoff.kiosk_digest, _digest(kiosk_secret)):
                del self._open[handoff_id]
