"""Connection state recovery, compatible with socket.io-client 4.6+ (decisions §7).

A socket that connects with `auth.recovery: true` is given a `pid` in the CONNECT reply and receives
every broadcast with one extra last argument, its offset. If it reconnects within the window with
`auth.pid` and `auth.offset`, it gets the same pid back (`socket.recovered === true`), its rooms,
subscriptions and identity, and every broadcast it missed, in order, before any new one.

Broadcasts are appended to a durable log before they are emitted, and kept in memory for the window,
so recovery also works after a restart of the server. Appends are group-committed: what is submitted
while one batch is being written goes into the next, in one round trip, and each broadcast is
delivered once its batch is durable, in offset order (one store round trip per batch instead of one
per broadcast under a lock: the product-path bench, docs/performance.md). A batch is delivered as
one (`Deliver` takes the list), so each socket gets a run of its broadcasts in one write (fanout.py,
`FanoutBatch`). Session saves (every connect and subscribe makes one) are group-committed the same
way, the newest save per pid; a new session's first save waits up to FIRST_SAVE_DELAY, so that the
client's subscribe usually replaces it.

Where the log lives decides who delivers. On one node it is the database (`Store`), and the log
delivers each broadcast itself once its batch has committed. In a cluster it is a Redis stream
(`cluster/log.py`) that also publishes each entry to every node, in offset order; each node then
delivers what it receives to its own sockets, and a publisher's future resolves once its own node
has delivered the broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from agent_portal.clock import SystemClock
from agent_portal.gateway.context import SocketContext, event_set
from agent_portal.storage.store import LogEntry, RecoverySession, Target

log = logging.getLogger(__name__)

RECOVERY_PREFIX = "r|"
# Every socket of a namespace is in this room, so namespace-wide broadcasts are room broadcasts too.
ALL = "all"

# Sends logged broadcasts (with their offsets), in order, to this node's sockets.
Deliver = Callable[[list[LogEntry]], Awaitable[None]]
# Takes one logged broadcast: from the cluster's log, or to replay to one socket.
Receive = Callable[[LogEntry], Awaitable[None]]
Emit = Receive
# How long a publisher waits for its own node to receive a broadcast back from the cluster log
# before it is told "sent" anyway (it is durable; the node catches up from the stream).
CLUSTER_ECHO_TIMEOUT = 5.0
# How long a recovering socket waits for this node to catch up with an offset another node sent it.
CAUGHT_UP_TIMEOUT = 2.0
# Turns of the event loop the log's writer lets pass before it takes a batch, so that publications
# read meanwhile (the handlers of data already received) join it: one commit, and one write per
# socket for a run, for more of them. Since the commit runs on the loop (storage/sql.py) batches had
# shrunk to what one turn submits. Product N = 100, 3 pairs: 601k / 679k / 635k -> 706k / 706k /
# 695k deliveries/s, p99 unchanged; a quiet loop's turns take microseconds (docs/performance.md).
GATHER_TURNS = 3
# How long a new session's first save (at connect) waits to be written, unless a later save of the
# same pid (the client's subscribe, a join, its disconnect) replaces it meanwhile: a client that
# connects and subscribes then costs one write, not two. A crash within this window loses only
# the chance to resume that session: its client reconnects unrecovered and reloads, as it would
# after the window (docs/performance.md, session 17).
FIRST_SAVE_DELAY = 1.0


class RecoveryStore(Protocol):
    """Where the log and the sessions are kept: the database (`Store`), or Redis in a cluster."""

    async def append_log(self, entries: list[LogEntry]) -> list[int]: ...
    async def log_since(self, since: datetime) -> list[LogEntry]: ...
    async def prune_log(self, before: datetime) -> int: ...
    async def save_sessions(self, sessions: list[RecoverySession]) -> None: ...
    async def take_session(self, pid: str) -> RecoverySession | None: ...
    async def end_sessions(self, at: datetime) -> None: ...
    async def prune_sessions(self, before: datetime) -> int: ...


class LogFeed(Protocol):
    """A log that hands every appended entry, from any node, to `receive`, in offset order."""

    def listen(self, receive: Receive) -> None: ...


def room_for(ctx: SocketContext, room: str) -> str:
    """The name a socket joins a logical room under: recovery sockets get their events with offsets."""
    return RECOVERY_PREFIX + room if ctx.pid else room


class RecoveryLog:
    def __init__(
        self,
        store: RecoveryStore,
        clock: SystemClock,
        window_seconds: float,
        feed: LogFeed | None = None,
        first_save_delay: float = FIRST_SAVE_DELAY,
    ) -> None:
        self._store = store
        self._clock = clock
        self.window = timedelta(seconds=window_seconds)
        self._entries: deque[LogEntry] = deque()
        self._replaying: dict[str, set[str]] = {}
        # The newest offset delivered here: a new session starts after it.
        self.head = 0
        # Broadcasts up to this offset may be gone from the window (pruned, or older than what was
        # loaded at start); None while that is unknown (nothing loaded, nothing pruned yet).
        self.floor: int | None = None
        # Sends a logged broadcast to this node's sockets (the publisher sets it).
        self.deliver: Deliver = _nowhere
        # Submitted, not yet written; the task writing them, while there are any.
        self._pending: list[tuple[LogEntry, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._feed = feed
        # Cluster: publishers waiting for their own broadcast to come back, by offset.
        self._echo: dict[int, asyncio.Future[int]] = {}
        # Sessions saved, not yet written (the newest per pid, with everyone waiting for it); the
        # batch being written; the task writing them. Group-committed as the log is.
        self._sessions: dict[str, tuple[RecoverySession, list[asyncio.Future[None]]]] = {}
        self._sessions_writing: dict[str, tuple[RecoverySession, list[asyncio.Future[None]]]] = {}
        self._session_writer: asyncio.Task[None] | None = None
        # First saves waiting out FIRST_SAVE_DELAY, by pid, and the timer that submits them.
        self._first_saves: dict[str, RecoverySession] = {}
        self._first_save_timer: asyncio.TimerHandle | None = None
        self.first_save_delay = first_save_delay
        self._started = asyncio.Event()
        self._moved = asyncio.Event()
        if feed is not None:
            feed.listen(self._received)

    async def start(self) -> None:
        now = self._clock.now()
        await self._store.end_sessions(now)
        self._entries.extend(await self._store.log_since(now - self.window))
        self.head = self._entries[-1].offset if self._entries else 0
        if self._entries:
            self.floor = self._entries[0].offset - 1
        self._started.set()

    def submit(
        self, targets: Iterable[Target], event: str, data: Any, encoded: str | None = None
    ) -> asyncio.Future[int]:
        """Logs one broadcast to every target, then has it delivered; resolves to its offset once
        delivered here.

        Broadcasts are delivered in the order of their offsets, which on one node is also the order
        they were submitted in, so offsets reach every socket in increasing order.
        """
        entry = LogEntry(0, tuple(targets), event, data, self._clock.now(), encoded)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, done))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return done

    async def _write(self) -> None:
        try:
            while self._pending:
                for _ in range(GATHER_TURNS):
                    await asyncio.sleep(0)
                batch, self._pending = self._pending, []
                try:
                    offsets = await self._store.append_log([entry for entry, _ in batch])
                except Exception as exc:  # the store failed: every publisher of the batch hears it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                if self._feed is not None:
                    for (_, done), offset in zip(batch, offsets, strict=True):
                        self._await_echo(offset, done)
                    continue
                logged = []
                for (entry, _), offset in zip(batch, offsets, strict=True):
                    entry.offset = offset
                    logged.append(entry)
                # The batch goes out as one: its broadcasts to the same sockets in one write each
                # (gateway/fanout.py, FanoutBatch).
                try:
                    await self._deliver(logged)
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, done), offset in zip(batch, offsets, strict=True):
                    if not done.done():
                        done.set_result(offset)
        finally:
            self._writer = None

    async def _deliver(self, entries: list[LogEntry]) -> None:
        # Into the window (for replays) just before they go out live, as one step: a replay
        # ending meanwhile has either sent them or is no longer held back from them.
        self._entries.extend(entries)
        self.head = max(self.head, entries[-1].offset)
        self._moved.set()
        await self.deliver(entries)

    # --- cluster: entries come back from the shared log, every node's in one order -----------

    def _await_echo(self, offset: int, done: asyncio.Future[int]) -> None:
        if offset <= self.head:  # received back before the append call returned
            if not done.done():
                done.set_result(offset)
            return
        self._echo[offset] = done

        def give_up() -> None:
            if self._echo.pop(offset, None) is done and not done.done():
                log.warning("broadcast not received back from the cluster log", extra={"offset": offset})
                done.set_result(offset)

        asyncio.get_running_loop().call_later(CLUSTER_ECHO_TIMEOUT, give_up)

    async def _received(self, entry: LogEntry) -> None:
        await self._started.wait()
        if entry.offset <= self.head:
            return  # loaded at start, or caught up already
        if self.head and entry.offset > self.head + 1:
            # Offsets are consecutive: some were published while this node's subscription was down.
            missed = [
                e
                for e in await self._store.log_since(self._clock.now() - self.window)
                if self.head < e.offset < entry.offset
            ]
            await self._deliver_echo([*missed, entry])
        else:
            await self._deliver_echo([entry])

    async def _deliver_echo(self, entries: list[LogEntry]) -> None:
        try:
            await self._deliver(entries)
        finally:
            for entry in entries:
                done = self._echo.pop(entry.offset, None)
                if done is not None and not done.done():
                    done.set_result(entry.offset)

    async def caught_up(self, offset: int) -> None:
        """Waits (briefly) until this node has delivered `offset`: a client that got it from another
        node must not be sent it again live after its replay here."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CAUGHT_UP_TIMEOUT):
                while self.head < offset:
                    self._moved.clear()
                    await self._moved.wait()

    def replaying(self, namespace: str) -> tuple[str, ...]:
        """Sockets that must not get live broadcasts yet: their missed ones are still being replayed."""
        sids = self._replaying.get(namespace)
        return tuple(sids) if sids else ()

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
                        and any(
                            t.namespace == ctx.namespace
                            and not rooms.isdisjoint(t.rooms)
                            and old_sid not in t.skip
                            and ctx.sid not in t.skip
                            for t in e.targets
                        )
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
            gone = self._entries.popleft()
            self.floor = max(self.floor or 0, gone.offset)
        await self._store.prune_log(cutoff)
        await self._store.prune_sessions(cutoff)

    # --- sessions ------------------------------------------------------------------------------

    @staticmethod
    def new_pid() -> str:
        return secrets.token_hex(10)

    async def save(self, ctx: SocketContext, *, disconnected: bool = False) -> None:
        """Saves the socket's session; returns once it is written."""
        session = self._session_of(ctx, disconnected)
        if session is not None:
            self._first_saves.pop(session.pid, None)  # this one holds all of it, and newer
            await self._submit_session(session)

    def save_first(self, ctx: SocketContext) -> None:
        """A new session's first save: written within `first_save_delay`, unless a later `save` of
        the same pid replaces it first. Nobody waits for it: until it is written, resuming the
        session fails (the client is told it was not recovered)."""
        session = self._session_of(ctx, False)
        if session is None:
            return
        self._first_saves[session.pid] = session
        if self._first_save_timer is None:
            loop = asyncio.get_running_loop()
            self._first_save_timer = loop.call_later(self.first_save_delay, self._submit_first_saves)

    def _submit_first_saves(self) -> None:
        self._first_save_timer = None
        sessions, self._first_saves = self._first_saves, {}
        for session in sessions.values():
            self._submit_session(session).add_done_callback(_log_failed_save)

    def _session_of(self, ctx: SocketContext, disconnected: bool) -> RecoverySession | None:
        if not ctx.pid or ctx.principal is None or ctx.session_closed:
            return None
        # A handler that was still running when the socket dropped (a join that had published
        # user_joined but not yet saved) would otherwise save the state left after the
        # disconnect's clean-up, with no projects joined, over the session its recovery resumes.
        ctx.session_closed = disconnected
        now = self._clock.now()
        state = {
            "since": ctx.recovery_since,
            "joined": sorted(ctx.joined),
            "subscriptions": [[project, sorted(events)] for project, events in ctx.subscriptions.items()],
            "rooms": sorted(ctx.logical_rooms),
        }
        return RecoverySession(
            ctx.pid, ctx.namespace, ctx.sid, ctx.principal.user_id, state, now, now if disconnected else None
        )

    def _submit_session(self, session: RecoverySession) -> asyncio.Future[None]:
        """Saves a session with whatever else is saved meanwhile, in one transaction; resolves once
        it is written. A later save of the same pid replaces one still waiting to be written."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queued = self._sessions.get(session.pid)
        waiters = queued[1] if queued is not None else []
        waiters.append(done)
        self._sessions[session.pid] = (session, waiters)
        if self._session_writer is None:
            self._session_writer = asyncio.ensure_future(self._write_sessions())
        return done

    async def _write_sessions(self) -> None:
        try:
            while self._sessions:
                self._sessions_writing, self._sessions = self._sessions, {}
                error: Exception | None = None
                try:
                    await self._store.save_sessions(
                        [session for session, _ in self._sessions_writing.values()]
                    )
                except Exception as exc:  # every saver of the batch hears it
                    error = exc
                batch, self._sessions_writing = self._sessions_writing, {}
                for _, waiters in batch.values():
                    for waiter in waiters:
                        if waiter.done():
                            continue
                        if error is None:
                            waiter.set_result(None)
                        else:
                            waiter.set_exception(error)
        finally:
            self._session_writer = None
            # Left early (cancelled as the loop shuts down): nobody may wait for a write that
            # will not come. After a normal end both are empty.
            for pending in (self._sessions_writing, self._sessions):
                for _, waiters in pending.values():
                    for waiter in waiters:
                        waiter.cancel()
            self._sessions_writing, self._sessions = {}, {}

    async def _session_written(self, pid: str) -> None:
        """Waits until no save of `pid` is queued or being written, so that taking the session
        finds the newest one (a socket that reconnects while its disconnect is being saved)."""
        while True:
            pending = self._sessions.get(pid) or self._sessions_writing.get(pid)
            if pending is None:
                return
            written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            pending[1].append(written)
            with contextlib.suppress(Exception):  # the saver hears the error; the take goes on
                await written

    async def restore(
        self, pid: str, ctx: SocketContext, offset: str | None
    ) -> tuple[str, int, set[str]] | None:
        """Takes the session of `pid` if `ctx` may resume it; returns (old sid, offset, rooms).

        Without an offset (the socket got no broadcast before it dropped; Node refuses these) the
        replay starts where the session began, so a quiet socket is recovered too."""
        if (offset is not None and not offset.isdigit()) or ctx.principal is None:
            return None
        if (first := self._first_saves.pop(pid, None)) is not None:
            # its socket is still connected here (a client that saw the connection die first):
            # resumed as it was before first saves waited
            self._submit_session(first).add_done_callback(_log_failed_save)
        await self._session_written(pid)
        session = await self._store.take_session(pid)
        if session is None or session.namespace != ctx.namespace or session.user_id != ctx.principal.user_id:
            return None
        since = int(session.state.get("since", 0))
        after = int(offset) if offset is not None else since
        if not self._still_covers(session, after):
            return None
        ctx.pid = pid
        ctx.recovery_since = since
        ctx.joined = frozenset(session.state.get("joined", []))
        ctx.subscriptions = {
            project: event_set(events) for project, events in session.state.get("subscriptions", [])
        }
        if self._feed is not None:
            await self.caught_up(after)
        return session.sid, after, set(session.state.get("rooms", []))

    def _still_covers(self, session: RecoverySession, after: int) -> bool:
        """Whether everything the session missed (the broadcasts after `after`) is still here.

        A session that ended within the window is covered, unless the window was pruned past its
        offset. A session saved while connected by a node that then died has no end time: it is
        covered only if nothing after its offset was pruned (or, when that cannot be told, if it was
        last saved within the window). Without this a client away for longer than the window was
        "recovered" with a silent hole in its events (bench/soak)."""
        now = self._clock.now()
        kept = self.floor is None or after >= self.floor
        if session.disconnected_at is not None:
            return now - session.disconnected_at <= self.window and kept
        if self.floor is not None:
            return kept
        return now - session.updated_at <= self.window


def _log_failed_save(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.warning("saving a recovery session failed: %s", exc)


async def _nowhere(entries: list[LogEntry]) -> None:
    raise RuntimeError("RecoveryLog.deliver is not set")
