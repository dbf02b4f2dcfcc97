"""Capability tokens: random, digest-only, expiring, single-use where asked."""

from __future__ import annotations

from appliance.jobs.tokens import CapabilityToken, Session, new_token


def test_tokens_are_random_url_safe_and_long() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) >= 43 and all(c.isalnum() or c in "-_" for c in t) for t in tokens)


def test_only_a_digest_is_kept_and_the_right_token_matches_until_expiry() -> None:
    secret, token = CapabilityToken.issue(expires_at=100.0)
    assert secret.encode() not in token.digest and len(token.digest) == 32
    assert token.matches(secret, now=99.0)
    assert not token.matches(secret, now=100.0)
    assert not token.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), now=1.0)
    assert not token.matches("", now=1.0)


def test_single_use_token_works_once() -> None:
    secret, token = CapabilityToken.issue(expires_at=100.0, single_use=True)
    assert token.redeem(secret, now=1.0)
    assert not token.redeem(secret, now=2.0)
    assert not token.matches(secret, now=2.0)


def test_reusable_token_survives_redeem_and_session_extends() -> None:
    secret, token = CapabilityToken.issue(expires_at=10.0)
    assert token.redeem(secret, now=1.0) and token.redeem(secret, now=2.0)
    session = Session("s", token)
    session.extend_to(5.0)
    assert token.expires_at == 10.0
    session.extend_to(50.0)
    assert token.matches(secret, now=40.0)
