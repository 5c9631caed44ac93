"""Sliding-window rate limits, bans and connection caps, on an injected clock (decisions §8).

Every rule is checked on both implementations: in-process (one node) and in Redis (a cluster)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent_portal.gateway.limits import ConnectionCounter, ConnectionTracker, Limiter, RateLimiter
from agent_portal.protocol.config import SecurityConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


MakeLimiter = Callable[[SecurityConfig, Clock], Limiter]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_limiter(backend: str, request: pytest.FixtureRequest) -> MakeLimiter:
    if backend == "memory":
        return lambda config, clock: RateLimiter(config, clock)
    from agent_portal.cluster.limits import RedisRateLimiter

    node: Any = request.getfixturevalue("cluster_node")
    return lambda config, clock: RedisRateLimiter(node, config, "events", clock)


@pytest.fixture
def counter(backend: str, request: pytest.FixtureRequest) -> ConnectionCounter:
    if backend == "memory":
        return ConnectionTracker()
    from agent_portal.cluster.limits import RedisConnectionCounter

    return RedisConnectionCounter(request.getfixturevalue("cluster_node"))


async def test_per_second_limit_with_retry_after(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    limiter = make_limiter(SecurityConfig(), clock)
    assert all([(await limiter.hit("u")).allowed for _ in range(10)])
    verdict = await limiter.hit("u")
    assert not verdict.allowed and 0 < verdict.retry_after_ms <= 1001
    assert (await limiter.hit("other")).allowed, "users are independent"
    clock.t += verdict.retry_after_ms / 1000
    assert (await limiter.hit("u")).allowed


async def test_per_minute_limit_and_ban_after_three_violations(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    limiter = make_limiter(SecurityConfig(events_per_second=1000, events_per_minute=100), clock)
    for episode in range(3):
        for _ in range(100 if episode == 0 else 0):
            assert (await limiter.hit("u")).allowed
        verdict = await limiter.hit("u")
        assert not verdict.allowed and verdict.violation
        if episode < 2:
            assert not verdict.banned
            assert not (await limiter.hit("u")).violation, "one episode counts once"
            clock.t += 61  # the window empties...
            for _ in range(100):
                assert (await limiter.hit("u")).allowed  # ...and fills again
    assert verdict.banned and verdict.newly_banned and verdict.retry_after_ms == 300_000
    clock.t += 100
    still = await limiter.hit("u")
    assert still.banned and 199_000 < still.retry_after_ms <= 200_001
    assert await limiter.ban_remaining_ms("u") > 0
    clock.t += 201
    assert (await limiter.hit("u")).allowed


async def test_violations_outside_the_window_are_forgotten(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    limiter = make_limiter(SecurityConfig(events_per_second=1000, events_per_minute=5), clock)
    for _ in range(2):
        for _ in range(5):
            await limiter.hit("u")
        assert (await limiter.hit("u")).violation
        clock.t += 700  # past the 10-minute window
    for _ in range(5):
        await limiter.hit("u")
    assert not (await limiter.hit("u")).banned


async def test_retry_after_is_when_both_windows_have_room(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    limiter = make_limiter(SecurityConfig(events_per_second=2, events_per_minute=3), clock)
    for at in (1000.0, 1000.6, 1001.2):
        clock.t = at
        assert (await limiter.hit("u")).allowed
    clock.t = 1001.5
    verdict = await limiter.hit("u")
    # Both windows are full; the minute one frees up last: 60 s after the event at 1000.0.
    assert not verdict.allowed and verdict.retry_after_ms == 58_501


async def test_live_config_change_applies(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(SecurityConfig(events_per_second=1), Clock())
    assert (await limiter.hit("u")).allowed and not (await limiter.hit("u")).allowed
    limiter.config = SecurityConfig(events_per_second=5)
    assert (await limiter.hit("u")).allowed


async def test_connection_cap_counts_engineio_sessions(counter: ConnectionCounter) -> None:
    for n in range(5):
        assert await counter.try_add("u", f"e{n}", "/portal", 5)
    assert await counter.try_add("u", "e0", "/chat/demo", 5), "another namespace on a known session is fine"
    assert not await counter.try_add("u", "e5", "/portal", 5)
    await counter.remove("u", "e1", "/portal")
    assert await counter.try_add("u", "e5", "/portal", 5)
    await counter.remove("u", "e0", "/portal")
    assert not await counter.try_add("u", "e6", "/portal", 5), "e0 still holds /chat/demo"
    await counter.remove("u", "e0", "/chat/demo")
    assert await counter.try_add("u", "e6", "/portal", 5)
