"""RecoveryLog.save: what a socket's recovery session holds once the socket has dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from agent_portal.auth.policy import principal_for
from agent_portal.clock import SystemClock
from agent_portal.gateway.context import SocketContext
from agent_portal.gateway.recovery import RecoveryLog
from agent_portal.protocol.registry import NamespaceKind
from agent_portal.storage.store import RecoverySession


class Sessions:
    """The session half of the recovery store, in memory."""

    def __init__(self) -> None:
        self.saved: dict[str, RecoverySession] = {}

    async def save_sessions(self, sessions: list[RecoverySession]) -> None:
        for session in sessions:
            self.saved[session.pid] = session


async def test_a_handler_finishing_after_the_disconnect_does_not_overwrite_the_session() -> None:
    # The race behind a flaky reconnect test: join_project published user_joined, the client
    # dropped, the disconnect saved the session and left every project; then the join handler's
    # own save ran with nothing joined, and the recovered socket came back in no project.
    sessions = Sessions()
    log = RecoveryLog(sessions, SystemClock(), 120)  # type: ignore[arg-type]
    ctx = SocketContext(
        "s1", "e1", "/project/demo", NamespaceKind.PROJECT, "demo", "ip", "ua", datetime.now(UTC)
    )
    ctx.principal = principal_for("alice", "member", ["demo"])
    ctx.pid = "p1"
    ctx.joined = frozenset({"demo"})

    await log.save(ctx, disconnected=True)
    ctx.joined = frozenset()  # the disconnect's clean-up
    await log.save(ctx)  # the late handler

    session = sessions.saved["p1"]
    assert session.state["joined"] == ["demo"]
    assert session.disconnected_at is not None


class SlowSessions(Sessions):
    """Sessions whose writes wait for `release`, each batch recorded as it was handed over."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None
        self.taken_while_writing = False

    async def save_sessions(self, sessions: list[RecoverySession]) -> None:
        self.batches.append([f"{s.pid}:{s.sid}" for s in sessions])
        self.writing = True
        try:
            await self.release.wait()
            if self.fail is not None:
                raise self.fail
            await super().save_sessions(sessions)
        finally:
            self.writing = False

    async def take_session(self, pid: str) -> RecoverySession | None:
        self.taken_while_writing = self.taken_while_writing or getattr(self, "writing", False)
        return self.saved.pop(pid, None)


async def settle() -> None:
    """Lets the tasks started so far run up to their next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


def context(sid: str, pid: str) -> SocketContext:
    ctx = SocketContext(
        sid, "e" + sid, "/project/demo", NamespaceKind.PROJECT, "demo", "ip", "ua", datetime.now(UTC)
    )
    ctx.principal = principal_for("alice", "member", ["demo"])
    ctx.pid = pid
    return ctx


async def test_saves_made_while_a_batch_is_written_go_in_the_next_one_newest_per_pid() -> None:
    sessions = SlowSessions()
    log = RecoveryLog(sessions, SystemClock(), 120)  # type: ignore[arg-type]
    first = asyncio.ensure_future(log.save(context("s0", "p0")))
    await settle()
    assert sessions.batches == [["p0:s0"]]
    later = [asyncio.ensure_future(log.save(context(f"s{n}", f"p{n % 5}"))) for n in range(1, 11)]
    await settle()
    assert not any(f.done() for f in [first, *later]), "nobody is told 'saved' before the write"
    sessions.release.set()
    await asyncio.gather(first, *later)
    # the second batch: one entry per pid, the last save of each (s6..s10 replaced s1..s5)
    assert sessions.batches[1:] == [["p1:s6", "p2:s7", "p3:s8", "p4:s9", "p0:s10"]]
    assert sessions.saved["p0"].sid == "s10"


async def test_every_saver_of_a_failed_batch_hears_the_error() -> None:
    sessions = SlowSessions()
    sessions.fail = OSError("disk gone")
    sessions.release.set()
    log = RecoveryLog(sessions, SystemClock(), 120)  # type: ignore[arg-type]
    results = await asyncio.gather(
        log.save(context("s1", "p1")), log.save(context("s2", "p2")), return_exceptions=True
    )
    assert [type(r) for r in results] == [OSError, OSError]


async def test_a_reconnect_takes_its_session_only_once_the_disconnect_save_is_written() -> None:
    sessions = SlowSessions()
    log = RecoveryLog(sessions, SystemClock(), 120)  # type: ignore[arg-type]
    old = context("old", "p1")
    old.joined = frozenset({"demo"})
    dropped = asyncio.ensure_future(log.save(old, disconnected=True))
    await settle()
    restoring = asyncio.ensure_future(log.restore("p1", context("new", "unset"), None))
    await asyncio.sleep(0.01)
    assert not restoring.done()
    sessions.release.set()
    await dropped
    resumed = await restoring
    assert not sessions.taken_while_writing
    assert resumed is not None and resumed[0] == "old"


async def test_savers_are_not_left_waiting_when_the_writer_is_cancelled() -> None:
    sessions = SlowSessions()  # never released: the write hangs until cancelled
    log = RecoveryLog(sessions, SystemClock(), 120)  # type: ignore[arg-type]
    writing = asyncio.ensure_future(log.save(context("s1", "p1")))
    await settle()
    queued = asyncio.ensure_future(log.save(context("s2", "p2")))
    await settle()
    assert log._session_writer is not None
    log._session_writer.cancel()
    results = await asyncio.wait_for(asyncio.gather(writing, queued, return_exceptions=True), 1)
    assert [type(r) for r in results] == [asyncio.CancelledError, asyncio.CancelledError]


class CountedSessions(Sessions):
    """Sessions whose every write is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    async def save_sessions(self, sessions: list[RecoverySession]) -> None:
        self.batches.append([f"{s.pid}:{s.state['rooms']}" for s in sessions])
        await super().save_sessions(sessions)

    async def take_session(self, pid: str) -> RecoverySession | None:
        return self.saved.pop(pid, None)


async def test_a_first_save_replaced_before_its_delay_is_never_written() -> None:
    # A client connects (the first save) and subscribes (a full save) a round trip later: one write.
    sessions = CountedSessions()
    log = RecoveryLog(sessions, SystemClock(), 120, first_save_delay=0.05)  # type: ignore[arg-type]
    ctx = context("s1", "p1")
    log.save_first(ctx)
    await settle()
    assert sessions.batches == [], "the first save waits"
    ctx.logical_rooms = ("all", "test_output")
    await log.save(ctx)
    await asyncio.sleep(0.1)  # past the delay
    assert sessions.batches == [["p1:['all', 'test_output']"]]


async def test_a_first_save_alone_is_written_after_its_delay() -> None:
    sessions = CountedSessions()
    log = RecoveryLog(sessions, SystemClock(), 120, first_save_delay=0.05)  # type: ignore[arg-type]
    log.save_first(context("s1", "p1"))
    log.save_first(context("s2", "p2"))
    closed = context("s3", "p3")
    closed.session_closed = True  # its disconnect saved it already
    log.save_first(closed)
    await asyncio.sleep(0.02)
    assert sessions.batches == []
    await asyncio.sleep(0.1)
    assert sessions.batches == [["p1:[]", "p2:[]"]]
    assert set(sessions.saved) == {"p1", "p2"}


async def test_a_session_whose_first_save_waits_can_still_be_resumed() -> None:
    # The client saw its connection die before the server did, and reconnects at once.
    sessions = CountedSessions()
    log = RecoveryLog(sessions, SystemClock(), 3600)  # type: ignore[arg-type]
    old = context("old", "p1")
    old.logical_rooms = ("all",)
    log.save_first(old)
    resumed = await log.restore("p1", context("new", "unset"), None)
    assert resumed is not None and resumed[0] == "old" and resumed[2] == {"all"}
    assert log._first_saves == {}
