"""Abuse limits (decisions §8): sliding-window event rates, bans after repeated abuse, connection caps.

Two implementations of each: in-process (here, one node) and in Redis (`cluster/limits.py`, shared by
every node of a cluster); the gateway sees only the protocols `Limiter` and `ConnectionCounter`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from agent_portal.protocol.config import SecurityConfig


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_ms: int = 0
    banned: bool = False
    newly_banned: bool = False
    violation: bool = False


# Verdicts are immutable: every allowed event shares this one.
ALLOWED = Verdict(True)


@dataclass
class _Window:
    # Accepted events of the last minute, and of the last second: the second deque keeps a hit
    # O(1) amortised where counting back through the minute's was O(events in the last second),
    # 8 % of the product bench's CPU with the limits raised (docs/performance.md).
    events: deque[float] = field(default_factory=deque)
    recent: deque[float] = field(default_factory=deque)
    violations: deque[float] = field(default_factory=deque)
    over_minute: bool = False
    banned_until: float = 0.0


class Limiter(Protocol):
    config: SecurityConfig

    async def hit(self, key: str) -> Verdict:
        """Counts one event of `key` if it is allowed now; says why not otherwise."""
        ...

    async def ban_remaining_ms(self, key: str) -> int: ...

    def forget_idle(self) -> None: ...


class ConnectionCounter(Protocol):
    async def try_add(self, user_id: str, eio_sid: str, namespace: str, limit: int) -> bool:
        """Counts `namespace` on the session; False (and nothing counted) if it would be the user's
        session number `limit + 1`."""
        ...

    async def remove(self, user_id: str, eio_sid: str, namespace: str) -> None: ...


class RateLimiter:
    """In-process limiter keyed by `user:<id>` or `ip:<addr>`; `config` may be replaced live, and
    `clock` (monotonic seconds) is injectable."""

    def __init__(self, config: SecurityConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._windows: dict[str, _Window] = {}

    async def ban_remaining_ms(self, key: str) -> int:
        window = self._windows.get(key)
        if window is None:
            return 0
        return max(0, int((window.banned_until - self.clock()) * 1000))

    async def hit(self, key: str) -> Verdict:
        return self.hit_now(key)

    def hit_now(self, key: str) -> Verdict:
        now = self.clock()
        cfg = self.config
        window = self._windows.get(key)
        if window is None:  # not setdefault: it would build a window (three deques) on every hit
            window = self._windows[key] = _Window()
        if window.banned_until > now:
            return Verdict(False, int((window.banned_until - now) * 1000) + 1, banned=True)
        events, recent = window.events, window.recent
        while events and events[0] <= now - 60.0:
            events.popleft()
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        in_last_second = len(recent)
        over_minute = len(events) >= cfg.events_per_minute
        if over_minute or in_last_second >= cfg.events_per_second:
            # Refused events are not recorded, so the window only drains: the event is accepted once
            # BOTH windows have room, i.e. at the later of the two instants.
            retry = max(
                events[-cfg.events_per_minute] + 60.0 - now if over_minute else 0.0,
                events[-cfg.events_per_second] + 1.0 - now if len(events) >= cfg.events_per_second else 0.0,
            )
            if over_minute and not window.over_minute:
                window.over_minute = True
                return self._violation(window, now, retry)
            return Verdict(False, _ms(retry))
        window.over_minute = False
        events.append(now)
        recent.append(now)
        return ALLOWED

    def _violation(self, window: _Window, now: float, retry: float) -> Verdict:
        cfg = self.config
        window.violations.append(now)
        while window.violations and window.violations[0] <= now - cfg.violation_window_seconds:
            window.violations.popleft()
        if len(window.violations) >= cfg.violations_before_ban:
            window.violations.clear()
            window.banned_until = now + cfg.ban_seconds
            return Verdict(False, cfg.ban_seconds * 1000, banned=True, newly_banned=True, violation=True)
        return Verdict(False, _ms(retry), violation=True)

    def forget_idle(self) -> None:
        """Drops windows with nothing left to remember, so memory follows active users only."""
        now = self.clock()
        for key in [
            k
            for k, w in self._windows.items()
            if w.banned_until <= now and not w.violations and (not w.events or w.events[-1] <= now - 60.0)
        ]:
            del self._windows[key]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000) + 1)


class ConnectionTracker:
    """Engine.IO sessions per user, whatever their namespaces (decisions §8)."""

    def __init__(self) -> None:
        # user -> Engine.IO session -> namespaces that session holds for the user (a tuple: a session
        # holds a few namespaces, and a set per connection costs 216 bytes)
        self._sessions: dict[str, dict[str, tuple[str, ...]]] = {}

    async def try_add(self, user_id: str, eio_sid: str, namespace: str, limit: int) -> bool:
        sessions = self._sessions.get(user_id, {})
        if eio_sid not in sessions and len(sessions) >= limit:
            return False
        held = self._sessions.setdefault(user_id, {}).get(eio_sid, ())
        if namespace not in held:
            self._sessions[user_id][eio_sid] = (*held, namespace)
        return True

    async def remove(self, user_id: str, eio_sid: str, namespace: str) -> None:
        sessions = self._sessions.get(user_id)
        if not sessions or eio_sid not in sessions:
            return
        held = tuple(ns for ns in sessions[eio_sid] if ns != namespace)
        if held:
            sessions[eio_sid] = held
        else:
            del sessions[eio_sid]
        if not sessions:
            del self._sessions[user_id]

    def sessions_of(self, user_id: str) -> int:
        return len(self._sessions.get(user_id, {}))

    def total(self) -> int:
        return sum(len(s) for s in self._sessions.values())
