"""One node of a cluster (decisions §9): its Redis connection, its name, its heartbeat, its channels.

Every shared structure lives under one key prefix, so several clusters (or test runs) can share a
Redis. A node proves it is alive by refreshing `{prefix}:node:{id}` (a key with a TTL); what a node
put into shared structures (presence, connection counts) is tagged with its id, and the Lua scripts
that read them ignore and remove entries of nodes whose key has expired, so a node that dies without
cleaning up stops counting within `NODE_TTL` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

NODE_TTL = 10.0
HEARTBEAT_EVERY = 3.0
POOL_SIZE = 64
POOL_WAIT = 20.0

# Lua: is the node named by a "node|..." member alive? Shared by the scripts that keep per-node entries.
LUA_ALIVE = """
local function alive(prefix, member)
  local node = string.match(member, "^([^|]+)|")
  return node ~= nil and redis.call('EXISTS', prefix .. ':node:' .. node) == 1
end
"""

Handler = Callable[[bytes], Awaitable[None] | None]


class ClusterNode:
    def __init__(self, url: str, prefix: str = "agent-portal", node_id: str | None = None) -> None:
        self.prefix = prefix
        self.id = node_id or secrets.token_hex(6)
        # A blocking pool: when every connection is busy (hundreds of clients reconnecting to this
        # node at once after another died) a command waits for one; redis-py's default pool raises
        # "Too many connections" past 100 instead, which failed those connects (bench/soak).
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT, decode_responses=False
        )
        self.redis: aioredis.Redis = aioredis.Redis.from_pool(pool)  # closed with the client
        self._handlers: dict[str, Handler] = {}
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def channel(self) -> str:
        """Messages addressed to this node alone (replies to its orchestrator requests, ...)."""
        return self.key("to", self.id)

    def on(self, channel: str, handler: Handler) -> None:
        """Calls `handler(message)` for each message on `channel`, in the order Redis delivers them."""
        self._handlers[channel] = handler

    async def start(self) -> None:
        await self.redis.ping()
        await self._beat()
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="cluster-heartbeat"))
        if self._handlers:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            await self._pubsub.subscribe(*self._handlers)
            self._tasks.append(asyncio.create_task(self._listen(), name="cluster-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.key("node", self.id))
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
        await self.redis.aclose()

    async def ready(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def _beat(self) -> None:
        await self.redis.set(self.key("node", self.id), b"1", px=int(NODE_TTL * 1000))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            try:
                await self._beat()
            except (RedisError, OSError):
                log.warning("cluster heartbeat failed", exc_info=True)

    async def _listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError):
                # The connection re-subscribes on reconnect; what was published meanwhile is
                # caught up from the stream by the log's gap check (cluster/log.py).
                log.warning("cluster subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            handler = self._handlers.get(channel)
            if handler is None:
                continue
            try:
                result = handler(message["data"])
                if result is not None:
                    await result
            except Exception:
                log.exception("cluster message handler failed", extra={"channel": channel})
