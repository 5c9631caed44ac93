"""Connection state recovery, compatible with socket.io-client 4.6+ (decisions §7).

A socket that connects with `auth.recovery: true` is given a `pid` in the CONNECT reply and receives
every broadcast with one extra last argument, its offset. If it reconnects within the window with
`auth.pid` and `auth.offset`, it gets the same pid back (`socket.recovered === true`), its rooms,
subscriptions and identity, and every broadcast it missed, in order, before any new one.

Broadcasts are appended to a durable log (the store) before they are emitted, and kept in memory for
the window, so recovery also works after a restart of the server. Appends are group-committed:
what is submitted while one batch is being written goes into the next, in one transaction, and each
broadcast is delivered once its batch is durable, in offset order (one store round trip per batch
instead of one per broadcast under a lock: the product-path bench, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from agent_portal.clock import SystemClock
from agent_portal.gateway.context import SocketContext
from agent_portal.storage.store import LogEntry, RecoverySession, Store

RECOVERY_PREFIX = "r|"
# Every socket of a namespace is in this room, so namespace-wide broadcasts are room broadcasts too.
ALL = "all"

Emit = Callable[[LogEntry], Awaitable[None]]
# Sends one broadcast once it is durable, given its offset.
Deliver = Callable[[int], Awaitable[None]]


def room_for(ctx: SocketContext, room: str) -> str:
    """The name a socket joins a logical room under: recovery sockets get their events with offsets."""
    return RECOVERY_PREFIX + room if ctx.pid else room


class RecoveryLog:
    def __init__(self, store: Store, clock: SystemClock, window_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self.window = timedelta(seconds=window_seconds)
        self._entries: deque[LogEntry] = deque()
        self._replaying: dict[str, set[str]] = {}
        # The newest offset handed out: a new session starts after it.
        self.head = 0
        # Submitted, not yet written; the task writing and delivering them, while there are any.
        self._pending: list[tuple[LogEntry, Deliver, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        now = self._clock.now()
        await self._store.end_sessions(now)
        self._entries.extend(await self._store.log_since(now - self.window))
        self.head = self._entries[-1].offset if self._entries else 0

    def submit(
        self,
        namespace: str,
        rooms: Iterable[str],
        skip: Iterable[str],
        event: str,
        data: Any,
        deliver: Deliver,
    ) -> asyncio.Future[int]:
        """Logs one broadcast, then calls `deliver(offset)`; resolves to the offset once delivered.

        Broadcasts are delivered one at a time in the order they were submitted, which is also the
        order of their offsets, so offsets reach every socket in increasing order.
        """
        entry = LogEntry(0, namespace, tuple(rooms), tuple(skip), event, data, self._clock.now())
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, deliver, done))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return done

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    offsets = await self._store.append_log([entry for entry, _, _ in batch])
                except Exception as exc:  # the store failed: every publisher of the batch hears it
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (entry, deliver, done), offset in zip(batch, offsets, strict=True):
                    # Into the window (for replays) just before it goes out live, as one step: a
                    # replay ending meanwhile has either sent it or is no longer held back from it.
                    self._entries.append(LogEntry(offset, *_fields_after_offset(entry)))
                    self.head = max(self.head, offset)
                    try:
                        await deliver(offset)
                    except Exception as exc:
                        if not done.done():
                            done.set_exception(exc)
                        continue
                    if not done.done():
                        done.set_result(offset)
        finally:
            self._writer = None

    def replaying(self, namespace: str) -> list[str]:
        """Sockets that must not get live broadcasts yet: their missed ones are still being replayed."""
        return list(self._replaying.get(namespace, ()))

    def begin_replay(self, ctx: SocketContext) -> None:
        self._replaying.setdefault(ctx.namespace, set()).add(ctx.sid)

    async def replay(self, ctx: SocketContext, after: int, old_sid: str, rooms: set[str], emit: Emit) -> int:
        """Sends what the socket missed, then lets live broadcasts through. Returns how many."""
        sent = 0
        last = after
        try:
            while True:
                pending = sorted(
                    (
                        e
                        for e in self._entries
                        if e.offset > last
                        and e.namespace == ctx.namespace
                        and not rooms.isdisjoint(e.rooms)
                        and old_sid not in e.skip
                        and ctx.sid not in e.skip
                    ),
                    key=lambda e: e.offset,
                )
                # No await between this check and the `finally`: nothing can slip in unsent.
                if not pending:
                    return sent
                for entry in pending:
                    await emit(entry)
                    last = entry.offset
                    sent += 1
        finally:
            self._replaying.get(ctx.namespace, set()).discard(ctx.sid)

    async def prune(self) -> None:
        cutoff = self._clock.now() - self.window
        while self._entries and self._entries[0].created_at < cutoff:
            self._entries.popleft()
        await self._store.prune_log(cutoff)
        await self._store.prune_sessions(cutoff)

    # --- sessions ------------------------------------------------------------------------------

    @staticmethod
    def new_pid() -> str:
        return secrets.token_hex(10)

    async def save(self, ctx: SocketContext, *, disconnected: bool = False) -> None:
        if not ctx.pid or ctx.principal is None:
            return
        now = self._clock.now()
        state = {
            "since": ctx.recovery_since,
            "joined": sorted(ctx.joined),
            "subscriptions": [[project, sorted(events)] for project, events in ctx.subscriptions.items()],
            "rooms": sorted(ctx.logical_rooms),
        }
        await self._store.save_session(
            RecoverySession(
                ctx.pid,
                ctx.namespace,
                ctx.sid,
                ctx.principal.user_id,
                state,
                now,
                now if disconnected else None,
            )
        )

    async def restore(
        self, pid: str, ctx: SocketContext, offset: str | None
    ) -> tuple[str, int, set[str]] | None:
        """Takes the session of `pid` if `ctx` may resume it; returns (old sid, offset, rooms).

        Without an offset (the socket got no broadcast before it dropped; Node refuses these) the
        replay starts where the session began, so a quiet socket is recovered too."""
        if (offset is not None and not offset.isdigit()) or ctx.principal is None:
            return None
        session = await self._store.take_session(pid)
        if session is None or session.namespace != ctx.namespace or session.user_id != ctx.principal.user_id:
            return None
        ended = session.disconnected_at or self._clock.now()
        if self._clock.now() - ended > self.window:
            return None
        ctx.pid = pid
        ctx.recovery_since = int(session.state.get("since", 0))
        ctx.joined = set(session.state.get("joined", []))
        ctx.subscriptions = {
            project: frozenset(events) for project, events in session.state.get("subscriptions", [])
        }
        after = int(offset) if offset is not None else ctx.recovery_since
        return session.sid, after, set(session.state.get("rooms", []))


def _fields_after_offset(entry: LogEntry) -> tuple[Any, ...]:
    return (entry.namespace, entry.rooms, entry.skip, entry.event, entry.data, entry.created_at)
