"""Capability tokens: the only thing that ties a guest to a job (no accounts, no names).

Why capabilities: a guest never signs up, so possession of a random token is the whole proof of
ownership. A session token (``secrets.token_urlsafe(32)``, 256 bits) opens every job of one session;
a one-time download token opens one job's result once (the QR code shown on the kiosk). Only a
SHA-256 digest of each token is kept, compared with ``hmac.compare_digest``, and every token
expires: a token is worth nothing once its jobs are gone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass
class CapabilityToken:
    """A digest of a token, when it stops working and whether it works only once."""

    digest: bytes
    expires_at: float
    single_use: bool = False
    used: bool = False

    @classmethod
    def issue(cls, expires_at: float, *, single_use: bool = False) -> tuple[str, CapabilityToken]:
        """Make a token; returns the secret (to hand out once) and what the service keeps."""
        token = new_token()
        return token, cls(_digest(token), expires_at, single_use=single_use)

    def matches(self, token: str, now: float) -> bool:
        """True when ``token`` is this one and still valid; constant time in the token."""
        if self.used or now >= self.expires_at:
            return False
        return hmac.compare_digest(_digest(token), self.digest)

    def redeem(self, token: str, now: float) -> bool:
        """Like ``matches``, and a single-use token is spent by a successful match."""
        if not self.matches(token, now):
            return False
        if self.single_use:
            self.used = True
        return True


@dataclass
class Session:
    """A guest's session: a token and the photos and jobs it may open. No other identity."""

    id: str
    token: CapabilityToken
    job_ids: set[str] = field(default_factory=set)
    photo_ids: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not self.job_ids and not self.photo_ids

    def extend_to(self, expires_at: float) -> None:
        """A session lives as long as its longest-lived job."""
        self.token.expires_at = max(self.token.expires_at, expires_at)
