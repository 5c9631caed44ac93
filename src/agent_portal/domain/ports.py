"""What the domain needs from the outside world, as protocols the application layer implements."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...


class IdGenerator(Protocol):
    def new(self, prefix: str) -> str:
        """A fresh id of the form ``"{prefix}-<8 lowercase hex>"``."""
        ...
