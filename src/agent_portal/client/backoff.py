"""The spec's ReconnectionManager for one connection: exponential backoff with jitter, in seconds."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """`delay = min(base_delay * factor ** attempts, max_delay)`, times a factor in [0.5, 1.0) with jitter.

    The defaults are the spec's (5 attempts, 1 s, 30 s, ×2, jitter). Use it as the spec does:
    `while b.should_retry(): d = b.next_delay(); b.record_attempt(); ...`, and `reset()` on success.
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: bool = True
    random: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.base_delay * self.factor**self.attempts, self.max_delay)
        if self.jitter:
            delay *= 0.5 + self.random() * 0.5
        return delay

    def should_retry(self) -> bool:
        return self.attempts < self.max_attempts

    def record_attempt(self) -> None:
        self.attempts += 1

    def reset(self) -> None:
        self.attempts = 0
