"""Presence shared by every node: who is in which project, users not tabs (decisions §4, §9).

`{prefix}:presence:{project}` is the set of users present; `...:{project}:{user}` the set of their
sockets, as "node|socket". Each change is one Lua script, so two nodes joining the same user at once
still announce them once. Sockets of nodes that died are dropped when next looked at.
"""

from __future__ import annotations

from agent_portal.cluster.node import LUA_ALIVE, ClusterNode

_LIVE = (
    LUA_ALIVE
    + """
local function live(prefix, sockets)
  local n = 0
  for _, member in ipairs(redis.call('SMEMBERS', sockets)) do
    if alive(prefix, member) then n = n + 1 else redis.call('SREM', sockets, member) end
  end
  return n
end
"""
)

# KEYS: users of the project, sockets of the user. ARGV: prefix, user, member
_JOIN = (
    _LIVE
    + """
local first = live(ARGV[1], KEYS[2]) == 0
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[1], ARGV[2])
if first then return 1 end
return 0
"""
)

_LEAVE = (
    _LIVE
    + """
if redis.call('SREM', KEYS[2], ARGV[3]) == 0 then return 0 end
if live(ARGV[1], KEYS[2]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
)

# KEYS: users of the project. ARGV: prefix. Returns the users with a live socket.
_USERS = (
    _LIVE
    + """
local present = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if live(ARGV[1], KEYS[1] .. ':' .. user) > 0 then
    present[#present + 1] = user
  else
    redis.call('SREM', KEYS[1], user)
  end
end
return present
"""
)


class RedisPresence:
    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self._join = node.redis.register_script(_JOIN)
        self._leave = node.redis.register_script(_LEAVE)
        self._users = node.redis.register_script(_USERS)

    def _keys(self, project: str, user_id: str) -> list[str]:
        users = self._node.key("presence", project)
        return [users, f"{users}:{user_id}"]

    async def join(self, project: str, user_id: str, socket_key: str) -> bool:
        member = f"{self._node.id}|{socket_key}"
        args = [self._node.prefix, user_id, member]
        return bool(await self._join(keys=self._keys(project, user_id), args=args))

    async def leave(self, project: str, user_id: str, socket_key: str) -> bool:
        member = f"{self._node.id}|{socket_key}"
        args = [self._node.prefix, user_id, member]
        return bool(await self._leave(keys=self._keys(project, user_id), args=args))

    async def users(self, project: str) -> list[str]:
        present = await self._users(keys=[self._node.key("presence", project)], args=[self._node.prefix])
        return sorted(u.decode() if isinstance(u, bytes) else str(u) for u in present)

    async def count(self, project: str) -> int:
        return len(await self.users(project))
