"""Signed access tokens (JWT, HS256) with the claims of decisions §2."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

import jwt

from agent_portal.auth.policy import Permission, Principal, principal_for
from agent_portal.errors import AuthenticationError
from agent_portal.protocol.common import Role

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "role", "permissions", "projects", "exp")
# Tokens whose verification is remembered (the most recent ones; see TokenService.verify).
VERIFIED_KEPT = 4096


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime


class TokenService:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        # Every connection of a user keeps its Principal (a browser holds several namespaces on one
        # token): equal principals are one object, alive as long as a connection holds it. Each token
        # is still verified in full; only the result is shared.
        self._principals: weakref.WeakValueDictionary[tuple[str, str, frozenset[str]], Principal] = (
            weakref.WeakValueDictionary()
        )
        # token -> (exp, the principal's key): tokens verified in full, with the one claim that
        # changes its answer over time.
        self._verified: dict[str, tuple[float, tuple[str, str, frozenset[str]]]] = {}

    def issue(
        self, user_id: str, role: Role, projects: list[str], ttl_seconds: int, now: datetime | None = None
    ) -> IssuedToken:
        principal = principal_for(user_id, role, projects)
        issued = now or datetime.now(UTC)
        expires = issued + timedelta(seconds=ttl_seconds)
        claims: dict[str, Any] = {
            "sub": user_id,
            "role": role,
            "permissions": principal.permission_names,
            "projects": sorted(principal.projects),
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires)

    def verify(self, token: str) -> Principal:
        """The principal of a token we issued and that has not expired; else AuthenticationError.

        A token verified once is remembered by its exact text with its expiry: the signature and
        the claims of the same text verify the same way under the same secret, and only `exp`
        depends on the time. A browser opens a namespace per view with one token and a script
        reconnects with the same token; the HS256 check and the claims' JSON were 7 % of the CPU
        of a connection set-up on the product bench. Product idle N = 5000, 3 alternating pairs:
        759 / 808 / 771 -> 912 / 1012 / 836 set-ups/s (docs/performance.md). Tokens that fail are
        not remembered; the most recent VERIFIED_KEPT are."""
        verified = self._verified.get(token)
        if verified is not None:
            expires, key = verified
            if expires <= time.time():  # PyJWT's test, without leeway
                del self._verified[token]
                raise AuthenticationError("Token expired", code="token_expired")
            principal = self._principals.get(key)
            return principal or self._shared(principal_for(key[0], cast(Role, key[1]), sorted(key[2])))
        principal, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (expires, (principal.user_id, principal.role, principal.projects))
        return self._shared(principal)

    def _shared(self, principal: Principal) -> Principal:
        return self._principals.setdefault((principal.user_id, principal.role, principal.projects), principal)

    def _verify(self, token: str) -> tuple[Principal, float]:
        """Verifies a token in full; returns its principal and its expiry (a POSIX time)."""
        try:
            # Pinning the algorithm list is what refuses `alg: none` and key-confusion tokens.
            # Every claim of decisions §2 is required: a token we did not issue in full is not ours.
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": list(REQUIRED_CLAIMS)}
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("Token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("Invalid token", code="invalid_token") from exc
        role = claims["role"]
        projects = claims["projects"]
        if role not in get_args(Role) or not isinstance(projects, list):
            raise AuthenticationError("Invalid token", code="invalid_token")
        if not all(isinstance(p, str) for p in projects) or not isinstance(claims["sub"], str):
            raise AuthenticationError("Invalid token", code="invalid_token")
        principal = principal_for(claims["sub"], cast(Role, role), projects)
        # The role decides the permissions; a token claiming more than its role grants is tampered.
        claimed = claims["permissions"]
        if not isinstance(claimed, list) or not {str(p) for p in claimed} <= {
            p.value for p in principal.permissions
        }:
            raise AuthenticationError("Invalid token", code="invalid_token")
        return principal, float(claims["exp"])


def permission_values(principal: Principal) -> list[str]:
    return [p.value for p in sorted(principal.permissions)]


__all__ = ["IssuedToken", "Permission", "TokenService", "permission_values"]
