"""The cluster's recovery log and sessions, in Redis (decisions §7, §9).

Why not python-socketio's `AsyncRedisManager`: it forwards each emit as a pickled call, with no
offset, and each node would encode it again. Recovery needs one order of offsets across the cluster
and the log entry written atomically with the broadcast, so one Lua script per batch does, for each
broadcast: `INCR` the cluster's offset, `XADD` the entry to a stream (the log, trimmed to the
window), and `PUBLISH` it to every node. Redis runs scripts one at a time and delivers a channel's
messages in publish order, so every node receives every broadcast in offset order, and the offsets
have no gaps: a node that sees one missed some (its subscription dropped) and reads them from the
stream. The first offset is taken from Redis's clock, so that after a Redis restart (sessions gone
too) offsets still grow and no old offset can be mistaken for a new one.

Wire format of an entry (stream field `m`, and the channel message): `<offset> <header JSON>\\n<args>`,
the header `[node, targets, event, created_at]` (targets: `[[namespace, rooms, skip], ...]`) and args
the `[event, data]` JSON the publisher encoded once, sent to sockets as is. Entries of the earlier
one-namespace header `[node, namespace, rooms, skip, event, created_at]`, still in a stream during an
upgrade, are read as one-target entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from agent_portal.cluster.node import ClusterNode
from agent_portal.gateway.recovery import Receive
from agent_portal.storage.store import LogEntry, RecoverySession, Target

# KEYS: offset counter, stream. ARGV: channel, then one message per broadcast. Returns the offsets.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[1], string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2])))
end
local offsets = {}
for i = 2, #ARGV do
  local offset = redis.call('INCR', KEYS[1])
  local message = string.format('%.0f', offset) .. ' ' .. ARGV[i]
  redis.call('XADD', KEYS[2], '*', 'm', message)
  redis.call('PUBLISH', ARGV[1], message)
  offsets[#offsets + 1] = offset
end
return offsets
"""

# Connected sessions are kept this long without a save (a node that died never says they ended).
CONNECTED_SESSION_TTL = 24 * 3600

Observer = Callable[[str, LogEntry], None]


def encode_entry(node: str, entry: LogEntry) -> str:
    targets = [target.plain() for target in entry.targets]
    header = [node, targets, entry.event, entry.created_at.isoformat()]
    args = entry.encoded or json.dumps([entry.event, entry.data], separators=(",", ":"))
    return json.dumps(header, separators=(",", ":")) + "\n" + args


def decode_entry(message: bytes) -> tuple[str, LogEntry]:
    """Returns the publishing node and the entry."""
    offset, rest = message.split(b" ", 1)
    header_json, args = rest.split(b"\n", 1)
    header = json.loads(header_json)
    targets: tuple[Target, ...]
    if len(header) == 6:  # the one-namespace header of before (see the module doc)
        node, namespace, rooms, skip, event, created = header
        targets = (Target(namespace, tuple(rooms), tuple(skip)),)
    else:
        node, plain_targets, event, created = header
        targets = tuple(Target.of(target) for target in plain_targets)
    encoded = args.decode()
    data = json.loads(encoded)[1]
    entry = LogEntry(
        int(offset),
        targets,
        event,
        data,
        datetime.fromisoformat(created),
        encoded,
    )
    return node, entry


class RedisRecoveryLog:
    """`RecoveryStore` and `LogFeed` of `gateway/recovery.py`, on Redis."""

    def __init__(self, node: ClusterNode, window_seconds: float) -> None:
        self._node = node
        self._window = timedelta(seconds=window_seconds)
        self._counter = node.key("log", "offset")
        self._stream = node.key("log", "entries")
        self._channel = node.key("log", "live")
        self._append = node.redis.register_script(_APPEND)
        self._receive: Receive | None = None
        # Told of entries published by other nodes (so live config reloads everywhere).
        self.observers: list[Observer] = []
        node.on(self._channel, self._message)

    def listen(self, receive: Receive) -> None:
        self._receive = receive

    async def _message(self, message: bytes) -> None:
        origin, entry = decode_entry(message)
        if origin != self._node.id:
            for observer in self.observers:
                observer(origin, entry)
        if self._receive is not None:
            await self._receive(entry)

    # --- the log ----------------------------------------------------------------------------

    async def append_log(self, entries: list[LogEntry]) -> list[int]:
        if not entries:
            return []
        messages = [encode_entry(self._node.id, entry) for entry in entries]
        offsets = await self._append(keys=[self._counter, self._stream], args=[self._channel, *messages])
        return [int(o) for o in offsets]

    async def log_since(self, since: datetime) -> list[LogEntry]:
        start = f"{int(since.timestamp() * 1000)}-0"
        rows = await self._node.redis.xrange(self._stream, min=start, max="+")
        return [decode_entry(cast(bytes, fields[b"m"]))[1] for _, fields in rows or [] if fields]

    async def prune_log(self, before: datetime) -> int:
        return int(await self._node.redis.xtrim(self._stream, minid=f"{int(before.timestamp() * 1000)}-0"))

    # --- sessions ---------------------------------------------------------------------------

    def _session_key(self, pid: str) -> str:
        return self._node.key("session", pid)

    async def save_sessions(self, sessions: list[RecoverySession]) -> None:
        # One round trip for the batch; Redis applies the SETs in order, so the last per pid wins.
        async with self._node.redis.pipeline(transaction=False) as pipe:
            for session in sessions:
                value = json.dumps(
                    {
                        "pid": session.pid,
                        "namespace": session.namespace,
                        "sid": session.sid,
                        "user_id": session.user_id,
                        "state": session.state,
                        "updated_at": session.updated_at.isoformat(),
                        "disconnected_at": session.disconnected_at.isoformat()
                        if session.disconnected_at
                        else None,
                    }
                )
                # A disconnected session is only worth keeping for the window (Redis forgets it then).
                ttl = self._window.total_seconds() + 5 if session.disconnected_at else CONNECTED_SESSION_TTL
                pipe.set(self._session_key(session.pid), value, px=int(ttl * 1000))
            await pipe.execute()

    async def take_session(self, pid: str) -> RecoverySession | None:
        raw = await self._node.redis.getdel(self._session_key(pid))
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        ended = data["disconnected_at"]
        return RecoverySession(
            pid=data["pid"],
            namespace=data["namespace"],
            sid=data["sid"],
            user_id=data["user_id"],
            state=data["state"],
            updated_at=datetime.fromisoformat(data["updated_at"]),
            disconnected_at=datetime.fromisoformat(ended) if ended else None,
        )

    async def end_sessions(self, at: datetime) -> None:
        """Nothing to do: other nodes' sessions are live, and a session saved as connected by a node
        that died counts as ended when it is taken (`RecoveryLog.restore`)."""

    async def prune_sessions(self, before: datetime) -> int:
        return 0  # sessions expire in Redis
