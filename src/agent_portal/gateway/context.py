"""Per-socket state the gateway keeps: who is connected where, and what it wants to receive.

There is one per namespace connection, so it is kept small: slots, and tuples or the shared empty
frozenset where a set would cost 216 bytes or more for a handful of names (measured with tracemalloc,
docs/performance.md). Writers replace these values; they do not mutate them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from agent_portal.auth.policy import Principal
from agent_portal.protocol.registry import NamespaceKind


@dataclass(slots=True)
class SocketContext:
    sid: str
    eio_sid: str
    namespace: str
    kind: NamespaceKind
    project: str | None
    ip: str
    user_agent: str
    connected_at: datetime
    principal: Principal | None = None
    joined: frozenset[str] = frozenset()
    # project (None = every project in scope) -> events the socket narrowed its stream to.
    subscriptions: dict[str | None, frozenset[str]] = field(default_factory=dict)
    # Subscription rooms (logical names), kept so changes can be applied as a difference.
    rooms: tuple[str, ...] = ()
    # Every room the socket is in, by logical name (recovery sockets are in them under a prefix).
    logical_rooms: tuple[str, ...] = ()
    auth_timer: asyncio.TimerHandle | None = None
    # Set for sockets that asked for connection state recovery.
    pid: str | None = None
    # The log offset its recovery session started after.
    recovery_since: int = 0
    # Set once the disconnect has saved the recovery session: from then on a handler still in
    # flight must not save it again (it would overwrite what the socket had at its disconnect).
    session_closed: bool = False

    @property
    def user_id(self) -> str:
        return self.principal.user_id if self.principal else "anonymous"

    @property
    def rate_key(self) -> str:
        # Limits apply per user once known, per IP before (decisions §8).
        return f"user:{self.principal.user_id}" if self.principal else f"ip:{self.ip}"


def event_set(events: Iterable[str]) -> frozenset[str]:
    """The event names a socket narrowed its stream to, as one frozenset shared by every socket that
    chose the same names (the names are a fixed vocabulary; most clients choose alike)."""
    return _shared_event_set(tuple(sorted(set(events))))


@lru_cache(maxsize=1024)
def _shared_event_set(events: tuple[str, ...]) -> frozenset[str]:
    return frozenset(sys.intern(event) for event in events)
