"""RecoveryLog.save: what a socket's recovery session holds once the socket has dropped."""

from __future__ import annotations

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

    async def save_session(self, session: RecoverySession) -> None:
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
    ctx.joined.add("demo")

    await log.save(ctx, disconnected=True)
    ctx.joined.clear()  # the disconnect's clean-up
    await log.save(ctx)  # the late handler

    session = sessions.saved["p1"]
    assert session.state["joined"] == ["demo"]
    assert session.disconnected_at is not None
