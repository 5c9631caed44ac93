"""Abuse limits shared by every node (decisions §8 "cluster-wide"), each check one atomic Lua script.

The rules are those of `gateway/limits.py` (tested against both in `tests/unit/test_limits.py`):
a sliding window of accepted events per key, refused events not recorded, one violation per
episode over the per-minute limit, a ban after `violations_before_ban` of them. Times come from the
caller's clock (wall-clock seconds: the nodes share them), so the same tests can drive it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent_portal.cluster.node import LUA_ALIVE, ClusterNode
from agent_portal.gateway.limits import Verdict
from agent_portal.protocol.config import SecurityConfig

# KEYS: events (zset of accepted stamps), state (hash: over_minute, banned_until, seq), violations (zset)
# ARGV: now, per_second, per_minute, violations_before_ban, violation_window, ban_seconds
# Returns {allowed, retry_seconds (string: Lua numbers would be truncated), banned, newly_banned, violation}
_HIT = """
local now = tonumber(ARGV[1])
local per_second, per_minute = tonumber(ARGV[2]), tonumber(ARGV[3])
local before_ban, violation_window, ban = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local keep = math.ceil(math.max(violation_window, ban, 60) + 60)
local banned_until = tonumber(redis.call('HGET', KEYS[2], 'banned_until') or '0')
if banned_until > now then
  return {0, tostring(banned_until - now), 1, 0, 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
local total = redis.call('ZCARD', KEYS[1])
local in_second = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.17g', now - 1), '+inf')
local over_minute = total >= per_minute
if over_minute or in_second >= per_second then
  local retry = 0
  if over_minute then
    local at = redis.call('ZRANGE', KEYS[1], total - per_minute, total - per_minute, 'WITHSCORES')
    retry = math.max(retry, tonumber(at[2]) + 60 - now)
  end
  if total >= per_second then
    local at = redis.call('ZRANGE', KEYS[1], total - per_second, total - per_second, 'WITHSCORES')
    retry = math.max(retry, tonumber(at[2]) + 1 - now)
  end
  if over_minute and redis.call('HGET', KEYS[2], 'over_minute') ~= '1' then
    redis.call('HSET', KEYS[2], 'over_minute', '1')
    local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
    redis.call('ZADD', KEYS[3], now, tostring(now) .. ':' .. seq)
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - violation_window)
    redis.call('EXPIRE', KEYS[2], keep)
    redis.call('EXPIRE', KEYS[3], keep)
    if redis.call('ZCARD', KEYS[3]) >= before_ban then
      redis.call('DEL', KEYS[3])
      redis.call('HSET', KEYS[2], 'banned_until', tostring(now + ban))
      return {0, tostring(ban), 1, 1, 1}
    end
    return {0, tostring(retry), 0, 0, 1}
  end
  return {0, tostring(retry), 0, 0, 0}
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('HSET', KEYS[2], 'over_minute', '0')
redis.call('ZADD', KEYS[1], now, tostring(now) .. ':' .. seq)
redis.call('EXPIRE', KEYS[1], 61)
redis.call('EXPIRE', KEYS[2], keep)
return {1, '0', 0, 0, 0}
"""


class RedisRateLimiter:
    def __init__(
        self,
        node: ClusterNode,
        config: SecurityConfig,
        name: str = "events",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self._node = node
        self._name = name
        self._hit = node.redis.register_script(_HIT)

    def _keys(self, key: str) -> list[str]:
        base = self._node.key("limit", self._name, key)
        return [f"{base}:events", f"{base}:state", f"{base}:violations"]

    async def hit(self, key: str) -> Verdict:
        cfg = self.config
        now = self.clock()
        allowed, retry, banned, newly_banned, violation = await self._hit(
            keys=self._keys(key),
            args=[
                repr(now),
                cfg.events_per_second,
                cfg.events_per_minute,
                cfg.violations_before_ban,
                cfg.violation_window_seconds,
                cfg.ban_seconds,
            ],
        )
        if allowed:
            return Verdict(True)
        seconds = float(retry)
        if newly_banned:
            return Verdict(False, cfg.ban_seconds * 1000, banned=True, newly_banned=True, violation=True)
        if banned:
            return Verdict(False, int(seconds * 1000) + 1, banned=True)
        return Verdict(False, max(1, int(seconds * 1000) + 1), violation=bool(violation))

    async def ban_remaining_ms(self, key: str) -> int:
        until = await self._node.redis.hget(self._keys(key)[1], "banned_until")
        if until is None:
            return 0
        return max(0, int((float(until) - self.clock()) * 1000))

    def forget_idle(self) -> None:
        """Nothing to do: every key expires once it has nothing left to remember."""


# KEYS: sessions of the user (hash "node|eio_sid" -> namespace count), namespaces of this session (set)
# ARGV: prefix, member ("node|eio_sid"), namespace, limit
_TRY_ADD = (
    LUA_ALIVE
    + """
-- Only a user at the cap has their sessions checked for dead nodes: O(1) below it.
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  local live = 0
  for _, member in ipairs(redis.call('HKEYS', KEYS[1])) do
    if alive(ARGV[1], member) then
      live = live + 1
    else
      redis.call('HDEL', KEYS[1], member)
      redis.call('DEL', KEYS[1] .. ':' .. member)
    end
  end
  if live >= tonumber(ARGV[4]) then return 0 end
end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], ARGV[2], redis.call('SCARD', KEYS[2]))
-- a safety net: a user idle for a day forgets sessions the alive check has not met
redis.call('EXPIRE', KEYS[1], 86400)
redis.call('EXPIRE', KEYS[2], 86400)
return 1
"""
)

_REMOVE = """
redis.call('SREM', KEYS[2], ARGV[1])
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('HDEL', KEYS[1], ARGV[2]) else redis.call('HSET', KEYS[1], ARGV[2], left) end
return left
"""


class RedisConnectionCounter:
    """Engine.IO sessions per user (or IP) across the cluster; a dead node's sessions stop counting."""

    def __init__(self, node: ClusterNode, name: str = "users") -> None:
        self._node = node
        self._name = name
        self._try_add = node.redis.register_script(_TRY_ADD)
        self._remove = node.redis.register_script(_REMOVE)

    def _keys(self, user_id: str, eio_sid: str) -> tuple[list[str], str]:
        member = f"{self._node.id}|{eio_sid}"
        base = self._node.key("conns", self._name, user_id)
        return [base, f"{base}:{member}"], member

    async def try_add(self, user_id: str, eio_sid: str, namespace: str, limit: int) -> bool:
        keys, member = self._keys(user_id, eio_sid)
        return bool(await self._try_add(keys=keys, args=[self._node.prefix, member, namespace, limit]))

    async def remove(self, user_id: str, eio_sid: str, namespace: str) -> None:
        keys, member = self._keys(user_id, eio_sid)
        await self._remove(keys=keys, args=[namespace, member])
