"""Sliding-window rate limits, bans and connection caps, on an injected clock (decisions §8)."""

from __future__ import annotations

from agent_portal.gateway.limits import ConnectionTracker, RateLimiter
from agent_portal.protocol.config import SecurityConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_per_second_limit_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(SecurityConfig(), clock)
    assert all(limiter.hit("u").allowed for _ in range(10))
    verdict = limiter.hit("u")
    assert not verdict.allowed and 0 < verdict.retry_after_ms <= 1001
    assert limiter.hit("other").allowed, "users are independent"
    clock.t += verdict.retry_after_ms / 1000
    assert limiter.hit("u").allowed


def test_per_minute_limit_and_ban_after_three_violations() -> None:
    clock = Clock()
    limiter = RateLimiter(SecurityConfig(events_per_second=1000, events_per_minute=100), clock)
    for episode in range(3):
        for _ in range(100 if episode == 0 else 0):
            assert limiter.hit("u").allowed
        verdict = limiter.hit("u")
        assert not verdict.allowed and verdict.violation
        if episode < 2:
            assert not verdict.banned
            assert not limiter.hit("u").violation, "one episode counts once"
            clock.t += 61  # the window empties...
            for _ in range(100):
                assert limiter.hit("u").allowed  # ...and fills again
    assert verdict.banned and verdict.newly_banned and verdict.retry_after_ms == 300_000
    clock.t += 100
    still = limiter.hit("u")
    assert still.banned and 199_000 < still.retry_after_ms <= 200_001
    assert limiter.ban_remaining_ms("u") > 0
    clock.t += 201
    assert limiter.hit("u").allowed


def test_violations_outside_the_window_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(SecurityConfig(events_per_second=1000, events_per_minute=5), clock)
    for _ in range(2):
        for _ in range(5):
            limiter.hit("u")
        assert limiter.hit("u").violation
        clock.t += 700  # past the 10-minute window
    for _ in range(5):
        limiter.hit("u")
    assert not limiter.hit("u").banned


def test_live_config_change_applies() -> None:
    limiter = RateLimiter(SecurityConfig(events_per_second=1), Clock())
    assert limiter.hit("u").allowed and not limiter.hit("u").allowed
    limiter.config = SecurityConfig(events_per_second=5)
    assert limiter.hit("u").allowed


def test_connection_cap_counts_engineio_sessions() -> None:
    tracker = ConnectionTracker()
    for n in range(5):
        assert not tracker.would_exceed("u", f"e{n}", 5)
        tracker.add("u", f"e{n}", "/portal")
    tracker.add("u", "e0", "/chat/demo")
    assert not tracker.would_exceed("u", "e0", 5), "another namespace on a known session is fine"
    assert tracker.would_exceed("u", "e5", 5)
    tracker.remove("u", "e1", "/portal")
    assert not tracker.would_exceed("u", "e5", 5)
    tracker.remove("u", "e0", "/portal")
    assert tracker.sessions_of("u") == 4, "e0 still holds /chat/demo"
