"""Verified tokens: equal principals are one object (every connection of a user keeps its own)."""

from __future__ import annotations

import gc
import time

import pytest

from agent_portal.auth.tokens import TokenService
from agent_portal.errors import AuthenticationError

SECRET = "s" * 48


def test_connections_of_one_user_share_one_principal() -> None:
    tokens = TokenService(SECRET)
    # two tokens issued apart (different iat/exp), same grants
    first = tokens.verify(tokens.issue("alice", "member", ["demo"], 3600).token)
    second = tokens.verify(tokens.issue("alice", "member", ["demo"], 7200).token)
    assert second is first


def test_different_grants_are_different_principals() -> None:
    tokens = TokenService(SECRET)
    demo = tokens.verify(tokens.issue("alice", "member", ["demo"], 3600).token)
    other = tokens.verify(tokens.issue("alice", "member", ["demo", "other"], 3600).token)
    viewer = tokens.verify(tokens.issue("alice", "viewer", ["demo"], 3600).token)
    bob = tokens.verify(tokens.issue("bob", "member", ["demo"], 3600).token)
    assert len({id(p) for p in (demo, other, viewer, bob)}) == 4
    assert other.projects == frozenset({"demo", "other"})
    assert viewer.role == "viewer" and bob.user_id == "bob"


def test_a_principal_no_connection_holds_is_not_kept() -> None:
    tokens = TokenService(SECRET)
    token = tokens.issue("alice", "member", ["demo"], 3600).token
    tokens.verify(token)
    gc.collect()
    assert len(tokens._principals) == 0
    assert tokens.verify(token).user_id == "alice"


def test_sharing_does_not_skip_verification() -> None:
    tokens = TokenService(SECRET)
    token = tokens.issue("alice", "member", ["demo"], 3600).token
    held = tokens.verify(token)
    forged = TokenService("t" * 48).issue("alice", "member", ["demo"], 3600).token
    with pytest.raises(AuthenticationError):
        tokens.verify(forged)
    expired = tokens.issue("alice", "member", ["demo"], -10).token
    with pytest.raises(AuthenticationError):
        tokens.verify(expired)
    assert held.user_id == "alice"


def test_a_token_verified_once_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import jwt

    from agent_portal.auth import tokens as module

    service = TokenService(SECRET)
    token = service.issue("alice", "member", ["demo"], 60).token
    decodes: list[str] = []
    real = jwt.decode
    monkeypatch.setattr(module.jwt, "decode", lambda t, *a, **k: decodes.append(t) or real(t, *a, **k))
    first = service.verify(token)
    assert service.verify(token) is first and decodes == [token], "the second is not decoded again"
    del first
    gc.collect()
    assert len(service._principals) == 0, "remembering a token does not hold its principal"
    assert service.verify(token).projects == frozenset({"demo"}), "made again, not decoded again"
    assert decodes == [token]
    later = time.time() + 61
    monkeypatch.setattr(module.time, "time", lambda: later)
    with pytest.raises(AuthenticationError) as refused:
        service.verify(token)
    assert refused.value.code == "token_expired"
    assert token not in service._verified, "an expired token is decoded (and refused) in full again"


def test_tokens_that_fail_are_not_remembered_and_the_kept_ones_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_portal.auth import tokens as module

    service = TokenService(SECRET)
    forged = TokenService("t" * 48).issue("alice", "member", ["demo"], 3600).token
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            service.verify(forged)
    assert forged not in service._verified
    monkeypatch.setattr(module, "VERIFIED_KEPT", 3)
    issued = [service.issue(f"u{n}", "viewer", ["demo"], 3600).token for n in range(5)]
    for token in issued:
        service.verify(token)
    assert list(service._verified) == issued[2:], "the oldest go first"
