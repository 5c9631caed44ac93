"""What the nodes of a cluster share through Redis (decisions §9): presence, the recovery log and
sessions. Real Redis, two node objects under one key prefix, as two servers would be."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_portal.clock import SystemClock
from agent_portal.cluster.log import RedisRecoveryLog
from agent_portal.cluster.node import ClusterNode
from agent_portal.cluster.presence import RedisPresence
from agent_portal.gateway.presence import Presence, PresenceStore
from agent_portal.gateway.recovery import RecoveryLog
from agent_portal.storage.store import LogEntry, RecoverySession, Target

CHAT = [Target("/chat/demo", ("all",))]

pytestmark = pytest.mark.redis


@pytest.fixture
async def peer(cluster_node: ClusterNode, redis_url: str) -> AsyncIterator[ClusterNode]:
    """A second node of the same cluster."""
    node = ClusterNode(redis_url, prefix=cluster_node.prefix)
    await node.start()
    yield node
    await node.stop()


@pytest.fixture(params=["memory", "redis"])
def presence(request: pytest.FixtureRequest) -> PresenceStore:
    if request.param == "memory":
        return Presence()
    return RedisPresence(request.getfixturevalue("cluster_node"))


async def test_presence_counts_users_not_tabs(presence: PresenceStore) -> None:
    assert await presence.join("demo", "alice", "/portal#1") is True
    assert await presence.join("demo", "alice", "/project/demo#2") is False, "a second tab"
    assert await presence.join("demo", "bob", "/portal#3") is True
    assert await presence.join("other", "bob", "/portal#4") is True, "projects are separate"
    assert (await presence.count("demo"), await presence.users("demo")) == (2, ["alice", "bob"])
    assert await presence.leave("demo", "alice", "/portal#1") is False, "alice still has a tab"
    assert await presence.leave("demo", "alice", "/portal#1") is False, "leaving twice changes nothing"
    assert await presence.leave("demo", "alice", "/project/demo#2") is True
    assert await presence.users("demo") == ["bob"]
    assert await presence.leave("demo", "nobody", "/portal#9") is False


async def test_presence_is_shared_and_a_dead_nodes_sockets_stop_counting(
    cluster_node: ClusterNode, redis_url: str
) -> None:
    here = RedisPresence(cluster_node)
    other = ClusterNode(redis_url, prefix=cluster_node.prefix)
    await other.start()
    there = RedisPresence(other)
    assert await here.join("demo", "alice", "/portal#a") is True
    assert await there.join("demo", "alice", "/portal#b") is False, "one user across nodes"
    assert await there.join("demo", "bob", "/portal#c") is True
    assert await here.users("demo") == ["alice", "bob"]
    await other.stop()  # its heartbeat key goes, as when it dies and the key expires
    assert await here.users("demo") == ["alice"]
    assert await here.join("demo", "bob", "/portal#d") is True, "bob's only socket was on the dead node"


async def test_a_dead_nodes_connections_stop_counting(cluster_node: ClusterNode, redis_url: str) -> None:
    from agent_portal.cluster.limits import RedisConnectionCounter

    other = ClusterNode(redis_url, prefix=cluster_node.prefix)
    await other.start()
    there = RedisConnectionCounter(other)
    for n in range(5):
        assert await there.try_add("u", f"e{n}", "/portal", 5)
    here = RedisConnectionCounter(cluster_node)
    assert not await here.try_add("u", "mine", "/portal", 5), "the cap is cluster-wide"
    await other.stop()
    assert await here.try_add("u", "mine", "/portal", 5)


class Delivered:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    async def __call__(self, entries: list[LogEntry]) -> None:
        self.entries.extend(entries)


async def _log_on(node: ClusterNode, window: float = 60.0) -> tuple[RecoveryLog, Delivered]:
    shared = RedisRecoveryLog(node, window)
    log = RecoveryLog(shared, SystemClock(), window, feed=shared)
    delivered = Delivered()
    log.deliver = delivered
    return log, delivered


async def test_every_node_delivers_every_broadcast_in_one_offset_order(
    redis_url: str, cluster_node: ClusterNode
) -> None:
    prefix = cluster_node.prefix
    nodes = [ClusterNode(redis_url, prefix=prefix) for _ in range(2)]
    logs = [await _log_on(node) for node in nodes]  # listening before the nodes subscribe
    for node, (log, _) in zip(nodes, logs, strict=True):
        await node.start()
        await log.start()
    try:
        futures = []
        for n in range(40):  # both nodes publish, interleaved, in batches
            log = logs[n % 2][0]
            args = json.dumps(["message_received", {"n": n}], separators=(",", ":"))
            futures.append(log.submit(CHAT, "message_received", {"n": n}, args))
            if n % 7 == 0:
                await asyncio.sleep(0)
        offsets = await asyncio.wait_for(asyncio.gather(*futures), 5)
        for _, delivered in logs:
            for _ in range(100):
                if len(delivered.entries) == 40:
                    break
                await asyncio.sleep(0.02)
        seen = [[e.offset for e in delivered.entries] for _, delivered in logs]
        assert seen[0] == seen[1], "one order on every node"
        assert seen[0] == list(range(seen[0][0], seen[0][0] + 40)), "consecutive offsets"
        assert sorted(offsets) == seen[0]
        # Each publisher's own broadcasts keep the order it submitted them in.
        for parity in (0, 1):
            mine = [e.data["n"] for e in logs[0][1].entries if e.data["n"] % 2 == parity]
            assert mine == sorted(mine)
        assert logs[0][1].entries[0].encoded is not None, "the encoded arguments travel as they are"
    finally:
        for node in nodes:
            await node.stop()


async def test_a_node_that_missed_broadcasts_reads_them_from_the_stream(
    redis_url: str, cluster_node: ClusterNode
) -> None:
    publishing_node = ClusterNode(redis_url, prefix=cluster_node.prefix)
    publisher, _ = await _log_on(publishing_node)
    await publishing_node.start()
    await publisher.start()
    first = await publisher.submit(CHAT, "message_received", {"n": 0})
    late_node = ClusterNode(redis_url, prefix=cluster_node.prefix)  # never subscribed
    late, delivered = await _log_on(late_node)
    await late.start()
    assert late.head == first, "a starting node reads the window from the stream"
    offsets = [await publisher.submit(CHAT, "message_received", {"n": n}) for n in range(1, 4)]
    # The late node hears of the last broadcast only (its subscription was down for the others).
    since = datetime.now(UTC) - timedelta(minutes=1)
    last = [e for e in await RedisRecoveryLog(late_node, 60).log_since(since) if e.offset == offsets[-1]]
    await late._received(last[0])
    assert [e.offset for e in delivered.entries] == offsets
    assert [e.data["n"] for e in delivered.entries] == [1, 2, 3]
    await late_node.redis.aclose()
    await publishing_node.stop()


async def test_sessions_are_shared_and_taken_once(cluster_node: ClusterNode, peer: ClusterNode) -> None:
    now = datetime.now(UTC)
    saved = RecoverySession("pid-1", "/chat/demo", "sid-1", "alice", {"rooms": ["all"]}, now, now)
    await RedisRecoveryLog(cluster_node, 60).save_sessions([saved])
    elsewhere = RedisRecoveryLog(peer, 60)
    taken: Any = await elsewhere.take_session("pid-1")
    assert taken == saved
    assert await elsewhere.take_session("pid-1") is None, "a pid is recovered at most once"
    await elsewhere.save_sessions([saved])
    ttl = await peer.redis.pttl(peer.key("session", "pid-1"))
    assert 60_000 < ttl <= 65_000, "a disconnected session is kept for the window, then forgotten"


class StepClock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


async def test_a_session_whose_node_died_is_recovered_only_while_the_log_covers_it(
    redis_url: str, cluster_node: ClusterNode
) -> None:
    from agent_portal.auth.policy import principal_for
    from agent_portal.gateway.context import SocketContext
    from agent_portal.protocol.registry import NamespaceKind

    clock = StepClock()
    node = ClusterNode(redis_url, prefix=cluster_node.prefix)
    shared = RedisRecoveryLog(node, 60)
    log = RecoveryLog(shared, clock, 60, feed=shared)
    log.deliver = Delivered()
    await node.start()
    await log.start()
    try:
        first = await log.submit(CHAT, "message_received", {"n": 1})

        def socket(sid: str) -> SocketContext:
            ctx = SocketContext(sid, "e", "/chat/demo", NamespaceKind.CHAT, "demo", "ip", "ua", clock.at)
            ctx.principal = principal_for("alice", "member", ["demo"])
            return ctx

        async def saved_while_connected(pid: str) -> None:
            # what a node saves while the socket is connected; the node then dies, so no end time
            await shared.save_sessions(
                [RecoverySession(pid, "/chat/demo", "old", "alice", {"since": 0}, clock.at)]
            )

        await saved_while_connected("kept")
        await saved_while_connected("pruned")
        clock.at += timedelta(seconds=30)
        assert await log.restore("kept", socket("s1"), str(first)) is not None, "its events are all here"

        # Later than the window: the broadcast after its offset is pruned, so no recovery.
        await log.submit(CHAT, "message_received", {"n": 2})
        clock.at += timedelta(seconds=90)
        await log.prune()
        assert log.floor is not None and log.floor > first
        assert await log.restore("pruned", socket("s2"), str(first)) is None, "a hole is not a recovery"
    finally:
        await node.stop()
