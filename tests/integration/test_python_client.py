"""The Python client (`agent_portal.client`) against a live server: login, typed events, call errors,
connect refusals, reconnection across a server restart on the same port, and an external orchestrator."""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from client_states import States, server_on

from agent_portal.client import (
    AuthenticationFailed,
    Backoff,
    CommandReply,
    ConnectionState,
    ConnectRefused,
    Forbidden,
    NetworkError,
    NotFound,
    OrchestratorClient,
    OrchestratorCommandEvent,
    PortalClient,
    RateLimited,
    StateChange,
    UnknownEvent,
    ValidationFailed,
)
from agent_portal.client import portal as portal_module
from agent_portal.protocol.common import WebSocketError, WorkflowState
from agent_portal.protocol.registry import SERVER_EVENTS
from agent_portal.protocol.server_events import (
    CommandResultEvent,
    StateChangeEvent,
    TaskUpdateEvent,
    UserJoinedEvent,
)
from support import LiveServer, free_port


class Inbox:
    """Collects what handlers receive and waits for it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, predicate: Callable[[Any], bool] = lambda _i: True, timeout: float = 3.0) -> Any:
        async def _wait() -> Any:
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)


@contextlib.asynccontextmanager
async def clients() -> AsyncIterator[list[PortalClient]]:
    opened: list[PortalClient] = []
    try:
        yield opened
    finally:
        for client in opened:
            await client.close()


def state_change(project: str, new: WorkflowState = "BACKLOG_READY") -> StateChangeEvent:
    return StateChangeEvent(
        project_name=project,
        old_state="IDLE",
        new_state=new,
        timestamp=datetime.now(UTC),
        triggered_by="test",
    )


# --- typing and backoff (no server) ----------------------------------------------------------------


def test_typed_on_overloads_cover_every_server_event() -> None:
    typed: dict[str, Any] = {}
    for overload in typing.get_overloads(PortalClient.on):
        hints = typing.get_type_hints(overload, globalns=vars(portal_module))
        event, handler = hints["event"], hints["handler"]
        if typing.get_origin(event) is typing.Literal:
            model = typing.get_args(handler)[0][0]
            for name in typing.get_args(event):
                typed[name] = model
    assert typed == SERVER_EVENTS


def test_backoff_is_the_spec_reconnection_manager() -> None:
    low = Backoff(random=lambda: 0.0)
    high = Backoff(random=lambda: 0.999999)
    delays = []
    while low.should_retry():
        delays.append((low.next_delay(), high.next_delay()))
        low.record_attempt()
        high.record_attempt()
    assert [round(d[0], 3) for d in delays] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert [round(d[1], 3) for d in delays] == [1.0, 2.0, 4.0, 8.0, 16.0]
    capped = Backoff(jitter=False)
    capped.attempts = 10
    assert capped.next_delay() == 30.0
    low.reset()
    assert low.should_retry() and low.next_delay() == 0.5


# --- login, connect, typed events ------------------------------------------------------------------


async def test_login_connect_join_and_typed_events(server: LiveServer) -> None:
    await server.add_user("alice", "correct horse", "member", ["demo"])
    async with clients() as opened:
        alice = await PortalClient.login(server.url, "alice", "correct horse", transports=["websocket"])
        opened.append(alice)
        assert alice.session is not None and alice.session.user_id == "alice"
        on_portal, on_project, raw = Inbox(), Inbox(), Inbox()
        alice.on("/portal", "state_change", on_portal)
        alice.on("/project/demo", "state_change", on_project)
        alice.on_any("/project/demo", lambda event, data: raw((event, data)))
        await alice.connect("/portal", "/project/demo")  # one Engine.IO session for both
        assert alice.connected
        joined = await alice.join_project("demo")
        assert joined.project_name == "demo" and joined.active_users == 1

        bob = PortalClient(server.url, token=server.token("bob", "viewer", ["demo"]))
        opened.append(bob)
        users = Inbox()
        bob.on("/portal", "user_joined", users)
        await bob.connect("/portal")
        await bob.join_project("demo")
        # alice sees bob arrive, typed
        alice_users = Inbox()
        alice.on("/portal", "user_joined", alice_users)
        await server.app.services.publisher.publish("state_change", state_change("demo"))
        event = await on_portal.wait()
        assert isinstance(event, StateChangeEvent) and event.new_state == "BACKLOG_READY"
        assert isinstance(await on_project.wait(), StateChangeEvent)
        assert ("state_change", event.model_dump(mode="json", exclude_none=True)) in raw.items

        await bob.leave_project("demo")
        await bob.join_project("demo")
        seen = await alice_users.wait(lambda e: e.user_id == "bob")
        assert isinstance(seen, UserJoinedEvent)


async def test_invalid_payload_is_not_given_to_typed_handlers(server: LiveServer) -> None:
    async with clients() as opened:
        client = PortalClient(server.url, token=server.token("alice"), transports=["websocket"])
        opened.append(client)
        typed, raw = Inbox(), Inbox()
        client.on("/project/demo", "state_change", typed)
        client.on_any("/project/demo", lambda event, data: raw((event, data)))
        await client.connect("/project/demo")
        await server.app.sio.emit("state_change", {"project_name": "demo"}, namespace="/project/demo")
        await server.app.services.publisher.publish("state_change", state_change("demo", "SPRINT_PLANNED"))
        await raw.wait(lambda item: item[1].get("new_state") == "SPRINT_PLANNED")
        assert raw.items[0] == ("state_change", {"project_name": "demo"})
        assert [e.new_state for e in typed.items] == ["SPRINT_PLANNED"]


async def test_login_with_a_wrong_password_is_refused(server: LiveServer) -> None:
    await server.add_user("carol", "right", "member", ["demo"])
    with pytest.raises(AuthenticationFailed) as caught:
        await PortalClient.login(server.url, "carol", "wrong")
    assert caught.value.code == "invalid_credentials"


# --- call errors -----------------------------------------------------------------------------------


async def test_call_errors_raise_typed_exceptions(server: LiveServer) -> None:
    async with clients() as opened:
        member = PortalClient(server.url, token=server.token("alice"), transports=["websocket"])
        viewer = PortalClient(server.url, token=server.token("vera", "viewer", ["demo"]))
        admin = PortalClient(server.url, token=server.token("root", "admin"), transports=["polling"])
        opened += [member, viewer, admin]
        await member.connect("/chat/demo", "/portal")
        await viewer.connect("/chat/demo")
        await admin.connect("/portal")
        validation = Inbox()
        member.on("/chat/demo", "validation_error", validation)

        with pytest.raises(ValidationFailed) as invalid:
            await member.call("/chat/demo", "send_message", {"content": "", "type": "shout"})
        assert invalid.value.type == "validation" and invalid.value.message == "Invalid message format"
        assert {d["path"] for d in invalid.value.details} == {"content", "type"}
        assert (await validation.wait()).message == "Invalid message format"

        with pytest.raises(Forbidden) as forbidden:
            await viewer.call("/chat/demo", "send_message", {"content": "hi", "type": "message"})
        assert forbidden.value.code == "forbidden" and forbidden.value.type == "authentication"

        with pytest.raises(UnknownEvent) as unknown:
            await member.call("/portal", "dance")
        assert unknown.value.code == "unknown_event"

        with pytest.raises(NotFound) as missing:
            await admin.join_project("nope")
        assert missing.value.code == "project_not_found"

        ok = await member.call("/chat/demo", "get_history", {"limit": 5})
        assert ok["messages"] == []


async def test_rate_limit_raises_rate_limited_with_retry_after(server: LiveServer) -> None:
    async with clients() as opened:
        client = PortalClient(server.url, token=server.token("hasty"), transports=["websocket"])
        opened.append(client)
        await client.connect("/chat/demo")
        with pytest.raises(RateLimited) as limited:
            for _ in range(20):
                await client.call("/chat/demo", "get_history", {"limit": 1})
        assert limited.value.code == "rate_limited" and not limited.value.banned
        assert 0 < limited.value.retry_after <= 1000


# --- connect refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "token", "code"),
    [
        ("/portal", lambda s: "not-a-token", "invalid_token"),
        ("/portal", lambda s: s.token("alice", ttl=-5), "token_expired"),
        ("/admin", lambda s: s.token("alice"), "forbidden"),
        ("/project/other", lambda s: s.token("alice"), "forbidden"),
        ("/project/nope", lambda s: s.token("root", "admin"), "project_not_found"),
        ("/orchestrator", lambda s: None, "invalid_token"),
        ("/nonsense", lambda s: s.token("alice"), "invalid_namespace"),
    ],
)
async def test_connect_refusals_raise_connect_refused(
    server: LiveServer, namespace: str, token: Callable[[LiveServer], str | None], code: str
) -> None:
    client = PortalClient(server.url, token=token(server), transports=["websocket"])
    states: list[StateChange] = []
    client.on_state(states.append)
    with pytest.raises(ConnectRefused) as refused:
        await client.connect(namespace, "/monitoring")  # the first refused namespace is reported
    assert refused.value.code == code and refused.value.namespace == namespace
    assert refused.value.type == "connection" and refused.value.message
    assert [s.state for s in states] == [ConnectionState.CONNECTING, ConnectionState.DISCONNECTED]
    assert not client.connected
    await client.close()


async def test_sixth_connection_is_refused_too_many_connections(server: LiveServer) -> None:
    async with clients() as opened:
        for _ in range(5):
            client = PortalClient(server.url, token=server.token("busy"), transports=["websocket"])
            opened.append(client)
            await client.connect("/portal", "/chat/demo")  # one session, two namespaces: one connection
        sixth = PortalClient(server.url, token=server.token("busy"), transports=["websocket"])
        with pytest.raises(ConnectRefused) as refused:
            await sixth.connect("/portal")
        assert refused.value.code == "too_many_connections"


# --- reconnection ----------------------------------------------------------------------------------


async def test_reconnects_with_backoff_to_a_new_server_on_the_same_port(tmp_path: Path) -> None:
    port = free_port()
    tokens: list[str] = []
    backoff = Backoff(base_delay=0.1, max_delay=0.4, max_attempts=8)
    async with server_on(tmp_path, port) as first:
        await first.add_project("demo")

        def token() -> str:
            tokens.append(first.token("rita", ttl=600 + len(tokens)))  # a fresh token per connect
            return tokens[-1]

        client = PortalClient(first.url, token=token, transports=["websocket"], backoff=backoff)
        states = States(client)
        events = Inbox()
        client.on("/portal", "state_change", events)
        await client.connect("/portal")
        await client.join_project("demo")
        await client.subscribe("/portal", ["state_change"], "demo")
        states.changes.clear()
    try:
        await states.wait(ConnectionState.DISCONNECTED)
        with pytest.raises(NetworkError) as offline:
            await client.call("/portal", "join_project", {"project_name": "demo"})
        assert offline.value.code == "not_connected"
        # Let three attempts fail against nothing before the new server comes up.
        await states.wait(ConnectionState.RECONNECTING, count=4)
        async with server_on(tmp_path, port) as second:
            await states.wait(ConnectionState.CONNECTED)
            attempts = states.of(ConnectionState.RECONNECTING)
            assert [s.attempt for s in attempts] == list(range(1, len(attempts) + 1))
            for change in attempts:
                expected = min(0.1 * 2 ** (change.attempt - 1), 0.4)
                assert change.delay is not None and 0.5 * expected <= change.delay <= expected
            assert all(s.error is not None for s in attempts[1:])  # each retry says why the last failed
            assert backoff.attempts == 0 and client.connected and len(tokens) >= 2
            # re-joined and re-subscribed on the new server: its events reach the client
            assert await second.app.services.presence.count("demo") == 1
            await second.app.services.publisher.publish("state_change", state_change("demo", "BLOCKED"))
            assert (await events.wait(lambda e: e.new_state == "BLOCKED")).project_name == "demo"
            await client.call("/portal", "leave_project", {"project_name": "demo"})
            assert await second.app.services.presence.count("demo") == 0
    finally:
        await client.close()


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    port = free_port()
    backoff = Backoff(base_delay=0.02, max_delay=0.05, max_attempts=3)
    async with server_on(tmp_path, port) as live:
        client = PortalClient(live.url, token=live.token("gus"), backoff=backoff, transports=["websocket"])
        states = States(client)
        await client.connect("/portal")
    try:
        gave_up = await states.wait(ConnectionState.GAVE_UP)
        assert gave_up.attempt == 3 and isinstance(gave_up.error, NetworkError)
        assert [s.state for s in states.changes] == [
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
            ConnectionState.DISCONNECTED,
            *[ConnectionState.RECONNECTING] * 3,
            ConnectionState.GAVE_UP,
        ]
    finally:
        await client.close()


# --- external orchestrator -------------------------------------------------------------------------


async def test_external_orchestrator_answers_commands_and_publishes(server: LiveServer) -> None:
    await server.add_project("ext", external=True)
    orchestrator = OrchestratorClient(
        server.url, token=server.token("bot", "orchestrator", ["ext"]), transports=["websocket"]
    )
    received: list[OrchestratorCommandEvent] = []

    @orchestrator.on_command("/sprint plan")
    async def plan(command: OrchestratorCommandEvent) -> CommandReply:
        received.append(command)
        return CommandReply(success=True, result={"sprint_id": "S-1", "stories": ["AUTH-1"]})

    @orchestrator.on_command
    def anything_else(command: OrchestratorCommandEvent) -> dict[str, Any]:
        if command.command == "/sprint start":
            raise RuntimeError("secret internals")
        return {"success": False, "error": f"{command.command} is not supported here"}

    async with clients() as opened:
        opened.append(orchestrator)
        await orchestrator.connect()
        chat = PortalClient(
            server.url, token=server.token("alice", "member", ["ext"]), transports=["polling"]
        )
        watcher = PortalClient(server.url, token=server.token("wes", "viewer", ["ext"]))
        opened += [chat, watcher]
        results = Inbox()
        chat.on("/chat/ext", "command_result", results)
        await chat.connect("/chat/ext")
        changes, tasks = Inbox(), Inbox()
        watcher.on("/project/ext", "state_change", changes)
        watcher.on("/project/ext", "task_update", tasks)
        await watcher.connect("/project/ext")

        await chat.call(
            "/chat/ext", "send_message", {"content": "/sprint plan AUTH-1 --goal login", "type": "command"}
        )
        result = await results.wait(lambda r: r.command == "/sprint plan")
        assert isinstance(result, CommandResultEvent) and result.success
        assert result.result["sprint_id"] == "S-1" and result.result["stories"] == ["AUTH-1"]
        assert received[0].project_name == "ext" and received[0].user_id == "alice"
        assert received[0].args.get("goal") == "login"

        await chat.call("/chat/ext", "send_message", {"content": "/sprint status", "type": "command"})
        status = await results.wait(lambda r: r.command == "/sprint status")
        assert not status.success and status.error == "/sprint status is not supported here"
        await chat.call("/chat/ext", "send_message", {"content": "/sprint start", "type": "command"})
        failed = await results.wait(lambda r: r.command == "/sprint start")
        assert not failed.success and failed.error == "Internal error in the orchestrator"

        ack = await orchestrator.publish("state_change", state_change("ext", "SPRINT_PLANNED"))
        assert ack == {"event": "state_change"}
        await orchestrator.publish(
            "task_update",
            {
                "project_name": "ext",
                "task_id": "T-1",
                "task_type": "code",
                "status": "in_progress",
                "progress": 40,
                "agent_type": "CodeAgent",
            },
        )
        change = await changes.wait()
        assert isinstance(change, StateChangeEvent) and change.new_state == "SPRINT_PLANNED"
        task = await tasks.wait()
        assert isinstance(task, TaskUpdateEvent) and task.progress == 40
        snapshot = await watcher.call("/project/ext", "get_snapshot")
        assert snapshot["current_state"] == "SPRINT_PLANNED"


async def test_orchestrator_publish_is_validated_locally_and_by_the_server(server: LiveServer) -> None:
    await server.add_project("ext", external=True)
    async with clients() as opened:
        orchestrator = OrchestratorClient(server.url, token=server.token("bot", "orchestrator", ["*"]))
        opened.append(orchestrator)
        await orchestrator.connect()
        errors = Inbox()
        orchestrator.on("/orchestrator", "validation_error", errors)
        with pytest.raises(ValidationFailed) as local:
            await orchestrator.publish("state_change", {"project_name": "ext", "old_state": "IDLE"})
        assert {d["path"] for d in local.value.details} >= {"data.new_state", "data.timestamp"}
        with pytest.raises(ValidationFailed):
            await orchestrator.publish(
                "state_change",
                TaskUpdateEvent(
                    project_name="ext",
                    task_id="T-1",
                    task_type="code",
                    status="pending",
                    progress=0,
                    agent_type="CodeAgent",
                ),
            )
        with pytest.raises(ValidationFailed):
            await orchestrator.publish("self_destruct", {})
        assert errors.items == []  # nothing above reached the server
        with pytest.raises(Forbidden) as embedded:
            await orchestrator.publish("state_change", state_change("demo"))
        assert "embedded" in embedded.value.message
        with pytest.raises(NotFound):
            await orchestrator.publish("state_change", state_change("ghost"))


async def test_chat_command_without_an_orchestrator_fails_in_the_chat(server: LiveServer) -> None:
    await server.add_project("ext", external=True)
    async with clients() as opened:
        chat = PortalClient(server.url, token=server.token("alice", "member", ["ext"]))
        opened.append(chat)
        results = Inbox()
        chat.on("/chat/ext", "command_result", results)
        errors: list[WebSocketError] = []
        chat.on("/chat/ext", "error", errors.append)
        await chat.connect("/chat/ext")
        await chat.call("/chat/ext", "send_message", {"content": "/sprint plan", "type": "command"})
        result = await results.wait()
        assert not result.success and "No orchestrator" in (result.error or "")
        assert errors == []


async def test_handlers_see_events_in_arrival_order(server: LiveServer) -> None:
    async with clients() as opened:
        client = PortalClient(server.url, token=server.token("olga"), transports=["websocket"])
        opened.append(client)
        seen = Inbox()
        delays = [0.03, 0.0, 0.02, 0.0, 0.01, 0.0]

        async def slow(event: StateChangeEvent) -> None:
            await asyncio.sleep(delays[int(event.reason or 0) % len(delays)])
            seen(event.reason)

        client.on("/project/demo", "state_change", slow)
        await client.connect("/project/demo")
        for n in range(12):
            await server.app.services.publisher.publish(
                "state_change", state_change("demo").model_copy(update={"reason": str(n)})
            )
        await seen.wait(lambda _r: len(seen.items) == 12)
        assert seen.items == [str(n) for n in range(12)]


async def test_login_session_refreshes_a_token_about_to_expire(server: LiveServer) -> None:
    await server.add_user("rosa", "pw", "member", ["demo"])
    async with clients() as opened:
        client = await PortalClient.login(server.url, "rosa", "pw", transports=["websocket"])
        opened.append(client)
        session = client.session
        assert session is not None
        session.expires_at = datetime.now(UTC)  # as if it were about to expire
        await client.connect("/portal")
        # only /api/auth/refresh can have set a new expiry (the token itself may be byte-identical
        # when issued within the same second)
        assert session.expires_at > datetime.now(UTC) + timedelta(minutes=5)
        assert (await client.join_project("demo")).project_name == "demo"


async def test_close_while_reconnecting_stops_the_attempts(tmp_path: Path) -> None:
    port = free_port()
    backoff = Backoff(base_delay=0.1, max_delay=0.1, max_attempts=50)
    async with server_on(tmp_path, port) as live:
        client = PortalClient(live.url, token=live.token("cleo"), backoff=backoff, transports=["websocket"])
        states = States(client)
        await client.connect("/portal")
    await states.wait(ConnectionState.RECONNECTING)
    await client.close()
    attempts = len(states.of(ConnectionState.RECONNECTING))
    await asyncio.sleep(0.3)
    assert len(states.of(ConnectionState.RECONNECTING)) == attempts
    assert states.changes[-1].state is ConnectionState.CLOSED and not client.connected


async def test_pending_call_fails_at_once_when_the_server_drops_the_socket(server: LiveServer) -> None:
    await server.add_project("ext", external=True)
    release = asyncio.Event()
    async with clients() as opened:
        orchestrator = OrchestratorClient(server.url, token=server.token("bot", "orchestrator", ["ext"]))
        opened.append(orchestrator)

        @orchestrator.on_command
        async def slow(_command: OrchestratorCommandEvent) -> CommandReply:
            await release.wait()
            return CommandReply(success=True)

        await orchestrator.connect()
        chat = PortalClient(
            server.url,
            token=server.token("alice", "member", ["ext"]),
            transports=["websocket"],
            backoff=Backoff(base_delay=0.05),
        )
        opened.append(chat)
        states = States(chat)
        await chat.connect("/chat/ext")
        with pytest.raises(NetworkError) as timed_out:
            await chat.call("/chat/ext", "get_history", {"limit": 1}, timeout=0.000001)
        assert timed_out.value.code == "timeout"

        # send_message is acked only once the orchestrator has answered, which it will not do for now
        pending = asyncio.create_task(
            chat.call("/chat/ext", "send_message", {"content": "/sprint plan", "type": "command"}, timeout=30)
        )
        await asyncio.sleep(0.2)
        for sid in server.app.gateway.sockets_of("/chat/ext", "alice"):
            await server.app.sio.disconnect(sid, namespace="/chat/ext")
        with pytest.raises(NetworkError) as dropped:
            await asyncio.wait_for(pending, 2)
        assert dropped.value.code == "disconnected"
        release.set()
        await states.wait(ConnectionState.CONNECTED, count=2)  # a server-side disconnect is reconnected too
        assert (await chat.call("/chat/ext", "get_history", {"limit": 1}))["messages"]


async def test_a_project_gone_after_a_restart_gives_up_at_once(tmp_path: Path) -> None:
    port = free_port()
    backoff = Backoff(base_delay=0.05, max_delay=0.1, max_attempts=20)
    async with server_on(tmp_path / "a", port) as first:
        await first.add_project("demo")
        client = PortalClient(first.url, token=first.token("pia"), backoff=backoff, transports=["websocket"])
        states = States(client)
        await client.connect("/project/demo")
    try:
        await states.wait(ConnectionState.RECONNECTING)
        async with server_on(tmp_path / "b", port):  # a fresh data dir: no project "demo"
            gave_up = await states.wait(ConnectionState.GAVE_UP)
            assert isinstance(gave_up.error, ConnectRefused) and gave_up.error.code == "project_not_found"
            assert gave_up.attempt < backoff.max_attempts
    finally:
        await client.close()
