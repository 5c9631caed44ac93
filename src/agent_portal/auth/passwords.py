"""Password hashing: slow, salted (argon2id), verified in constant time."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class PasswordService:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    @functools.cached_property
    def _dummy(self) -> str:
        # Verifying against a real hash for unknown users keeps "no such user" as slow as "wrong
        # password". Made on first use: hashing is deliberately slow and most starts never need it.
        return self._hasher.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False
