from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from support import LiveServer, live_server, make_settings


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(make_settings(tmp_path)) as live:
        await live.add_project("demo")
        await live.add_project("other")
        yield live


# Hypothesis fails an example that takes over 200 ms by default: a timed assertion, which can fail
# only because the machine is busy. What the properties check is the answer, not its speed. (A
# property of test_packet_codec failed once in a full-suite run on 2026-12-03, 840 tests in, and
# then passed alone, in a full run, and over 200,000 examples: the deadline is its one part that
# depends on the machine. Its report was not kept, so that it was the deadline is not proven.)
settings.register_profile("portal", deadline=None)
settings.load_profile("portal")


def _service_missing(name: str, error: Exception) -> None:
    # In CI the services are part of the machine: a missing one is a failure, never a silent skip.
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI: {error}")
    pytest.skip(f"{name} not reachable: {error}")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return os.environ.get("AGENT_PORTAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards. Synchronous, so parametrized fixtures can ask
    for it with request.getfixturevalue."""
    import asyncpg

    name = f"agent_portal_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_admin_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        _service_missing("PostgreSQL", exc)
    base = postgres_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url() -> str:
    import redis

    url = os.environ.get("AGENT_PORTAL_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _service_missing("Redis", exc)
    return url


@pytest.fixture
async def cluster_node(redis_url: str) -> AsyncIterator[Any]:
    """A started cluster node on the test Redis, under a key prefix of its own (removed afterwards)."""
    from agent_portal.cluster.node import ClusterNode

    prefix = f"test-{uuid.uuid4().hex[:10]}"
    node = ClusterNode(redis_url, prefix=prefix)
    await node.start()
    try:
        yield node
    finally:
        keys = [key async for key in node.redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await node.redis.delete(*keys)
        await node.stop()
