"""The Python client recovers its connection state (decisions §7) like socket.io-client 4.6+: after the
network drops (a proxy cuts every connection), across a restart of the server on the same data dir and
port, and, beyond the window, falls back to re-joining and says so."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from client_states import States, server_on

from agent_portal.client import (
    Backoff,
    ConnectionState,
    OrchestratorClient,
    PortalClient,
)
from agent_portal.client.recovery import Recovery
from support import LiveServer, free_port

# --- helpers ---------------------------------------------------------------------------------------


class Proxy:
    """A TCP proxy in front of the server. `cut()` drops every connection at once, as a network does
    (no Socket.IO or WebSocket goodbye), and refuses new ones until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = False
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()

    def cut(self) -> None:
        self.down = True
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.down = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._links -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


class Inbox:
    """Collects what handlers receive and waits for it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        async def _wait() -> Any:
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)

    def names(self) -> list[str]:
        return [item.triggered_by for item in self.items]


@contextlib.asynccontextmanager
async def orchestrator(server: LiveServer) -> AsyncIterator[OrchestratorClient]:
    bot = OrchestratorClient(
        server.url, token=server.token("bot", "orchestrator", ["ext"]), transports=["websocket"]
    )
    await bot.connect()
    try:
        yield bot
    finally:
        await bot.close()


async def publish(bot: OrchestratorClient, *names: str) -> None:
    for name in names:
        await bot.publish(
            "state_change",
            {
                "project_name": "ext",
                "old_state": "IDLE",
                "new_state": "BACKLOG_READY",
                "timestamp": datetime.now(UTC).isoformat(),
                "triggered_by": name,
            },
        )


def alice(url: str, server: LiveServer, transports: list[str], **options: Any) -> PortalClient:
    backoff = Backoff(base_delay=0.05, max_delay=0.2, max_attempts=50)
    token = server.token("alice", "member", ["ext"])
    return PortalClient(url, token=token, transports=transports, backoff=backoff, **options)


async def only_one_socket(live: LiveServer, user: str) -> None:
    """Waits until the server has let go of the dropped socket (a polling one only goes on ping timeout)."""
    for _ in range(100):
        if len(live.app.gateway.sockets_of("/portal", user)) == 1:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{user} still has {live.app.gateway.sockets_of('/portal', user)} on /portal")


def names(n: int, m: int) -> list[str]:
    return [f"e{i}" for i in range(n, m + 1)]


# --- the offset rules, without a server ------------------------------------------------------------


def test_offsets_are_stripped_only_from_broadcasts_of_a_recovery_namespace() -> None:
    recovery = Recovery()
    payload = {"project_name": "ext"}
    assert recovery.strip("/portal", (payload, "7")) == (payload, "7"), "no pid yet: recovery is off"
    assert recovery.auth("/portal") == {"recovery": True}
    recovery.connected("/portal", {"sid": "a", "pid": "p1"})
    assert not recovery.recovered("/portal")
    assert recovery.auth("/portal") == {"recovery": True, "pid": "p1"}, "no event yet: no offset"
    assert recovery.strip("/portal", (payload,)) == (payload,), "a direct reply has no offset"
    assert recovery.strip("/portal", ("just a string",)) == ("just a string",)
    assert recovery.strip("/portal", (payload, 7)) == (payload, 7), "an offset is a string"
    assert recovery.strip("/portal", (payload, "12")) == (payload,)
    assert recovery.auth("/portal") == {"recovery": True, "pid": "p1", "offset": "12"}
    assert recovery.auth("/chat/ext") == {"recovery": True}, "each namespace has its own session"
    recovery.connected("/portal", {"sid": "b", "pid": "p1"})
    assert recovery.recovered("/portal")
    recovery.connected("/portal", {"sid": "c", "pid": "p2"})
    assert not recovery.recovered("/portal")
    assert recovery.auth("/portal") == {"recovery": True, "pid": "p2"}, "a new session drops old offsets"


# --- recovery after a dropped network --------------------------------------------------------------


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_recovers_every_missed_event_once_in_order_after_the_network_drops(
    server: LiveServer, transports: list[str]
) -> None:
    await server.add_project("ext", external=True)
    port = int(server.url.rsplit(":", 1)[1])
    async with Proxy(port) as proxy, orchestrator(server) as bot:
        client = alice(proxy.url, server, transports)
        watcher = PortalClient(server.url, token=server.token("wes", "viewer", ["ext"]))
        try:
            states = States(client)
            portal, project, joined, raw = Inbox(), Inbox(), Inbox(), Inbox()
            client.on("/portal", "state_change", portal)
            client.on("/project/ext", "state_change", project)
            client.on("/portal", "joined_project", joined)
            client.on_any("/portal", lambda event, data: raw((event, data)))
            await client.connect("/portal", "/project/ext")
            await client.join_project("ext")
            await client.subscribe("/portal", ["state_change"], "ext")
            presence = Inbox()
            watcher.on("/portal", "user_joined", presence)
            watcher.on("/portal", "user_left", presence)
            await watcher.connect("/portal")
            await watcher.join_project("ext")

            await publish(bot, *names(1, 3))
            await portal.wait(lambda e: e.triggered_by == "e3")
            await project.wait(lambda e: e.triggered_by == "e3")

            proxy.cut()
            await states.wait(ConnectionState.DISCONNECTED)
            await publish(bot, *names(4, 6))  # missed while the network is down
            await states.wait(ConnectionState.RECONNECTING, count=2)  # an attempt failed against nothing
            proxy.restore()
            back = await states.wait(ConnectionState.CONNECTED, count=2)
            await publish(bot, "e7")  # possibly while the missed ones are still being replayed
            await portal.wait(lambda e: e.triggered_by == "e7")
            await project.wait(lambda e: e.triggered_by == "e7")

            assert back.recovered is True
            assert client.recovered("/portal") and client.recovered("/project/ext")
            assert portal.names() == names(1, 7), "every event once, in order, the missed ones first"
            assert project.names() == names(1, 7)
            assert all(isinstance(data, dict) for _, data in raw.items), "the offset never reaches callers"
            own = [data for event, data in raw.items if event in ("user_left", "user_joined")]
            assert not [d for d in own if d["user_id"] == "alice"], "a user is never told about itself"
            # The server restored the join: the client did not join again, and presence did not double.
            assert len(joined.items) == 1
            assert await server.app.services.presence.users("ext") == ["alice", "wes"]
            kinds = [type(p).__name__ for p in presence.items]
            assert kinds in ([], ["UserLeftEvent", "UserJoinedEvent"]), "the watcher saw alice back once"
            snapshot = await client.call("/project/ext", "get_snapshot", {})
            assert snapshot["active_users"] == ["alice", "wes"]
            # The narrowed stream survived too: a task_update is not state_change, so it stays away.
            await bot.publish(
                "task_update",
                {
                    "project_name": "ext",
                    "task_id": "t1",
                    "task_type": "code",
                    "status": "in_progress",
                    "progress": 10,
                    "agent_type": "CodeAgent",
                },
            )
            await publish(bot, "e8")
            await portal.wait(lambda e: e.triggered_by == "e8")
            assert [event for event, _ in raw.items].count("task_update") == 0
        finally:
            await client.close()
            await watcher.close()


async def test_recovers_what_it_missed_across_a_server_restart(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    async with Proxy(port) as proxy:
        async with server_on(data, port) as first:
            await first.add_project("ext", external=True)
            client = alice(proxy.url, first, ["websocket"])
            states = States(client)
            events = Inbox()
            client.on("/project/ext", "state_change", events)
            await client.connect("/project/ext")
            async with orchestrator(first) as bot:
                await publish(bot, *names(1, 2))
                await events.wait(lambda e: e.triggered_by == "e2")
                proxy.cut()
                await states.wait(ConnectionState.DISCONNECTED)
                await publish(bot, *names(3, 4))  # logged, never delivered: then the server goes away
        try:
            async with server_on(data, port) as second:
                async with orchestrator(second) as bot:
                    await publish(bot, *names(5, 6))  # on the new server, still before the client is back
                    proxy.restore()
                    back = await states.wait(ConnectionState.CONNECTED, count=2)
                    await publish(bot, "e7")
                    await events.wait(lambda e: e.triggered_by == "e7")
                assert back.recovered is True and client.recovered("/project/ext")
                assert events.names() == names(1, 7)
        finally:
            await client.close()


# --- beyond the window -----------------------------------------------------------------------------


async def test_beyond_the_window_it_is_not_recovered_and_joins_again(tmp_path: Path) -> None:
    window = 1.0
    port = free_port()
    async with server_on(tmp_path, port, recovery_window_seconds=window) as live, Proxy(port) as proxy:
        await live.add_project("ext", external=True)
        client = alice(proxy.url, live, ["websocket"])
        try:
            states = States(client)
            events, joined = Inbox(), Inbox()
            client.on("/portal", "state_change", events)
            client.on("/portal", "joined_project", joined)
            await client.connect("/portal")
            await client.join_project("ext")
            async with orchestrator(live) as bot:
                await publish(bot, "e1")
                await events.wait(lambda e: e.triggered_by == "e1")
                proxy.cut()
                await states.wait(ConnectionState.DISCONNECTED)
                await publish(bot, "lost")
                await asyncio.sleep(window + 0.5)
                proxy.restore()
                back = await states.wait(ConnectionState.CONNECTED, count=2)
                assert back.recovered is False and not client.recovered("/portal")
                # Not recovered: the client joined again by itself, and the caller reloads a snapshot.
                assert len(joined.items) == 2
                await publish(bot, "e2")
                await events.wait(lambda e: e.triggered_by == "e2")
            assert events.names() == ["e1", "e2"]
            assert await live.app.services.presence.users("ext") == ["alice"]
        finally:
            await client.close()


async def test_with_recovery_off_it_joins_again_and_never_claims_recovery(server: LiveServer) -> None:
    await server.add_project("ext", external=True)
    port = int(server.url.rsplit(":", 1)[1])
    async with Proxy(port) as proxy, orchestrator(server) as bot:
        client = alice(proxy.url, server, ["websocket"], recovery=False)
        try:
            states = States(client)
            events, joined = Inbox(), Inbox()
            client.on("/portal", "state_change", events)
            client.on("/portal", "joined_project", joined)
            await client.connect("/portal")
            await client.join_project("ext")
            await publish(bot, "e1")
            await events.wait(lambda e: e.triggered_by == "e1")
            proxy.cut()
            await states.wait(ConnectionState.DISCONNECTED)
            await publish(bot, "lost")
            proxy.restore()
            back = await states.wait(ConnectionState.CONNECTED, count=2)
            assert back.recovered is False and not client.recovered("/portal")
            assert len(joined.items) == 2
            await publish(bot, "e2")
            await events.wait(lambda e: e.triggered_by == "e2")
            assert events.names() == ["e1", "e2"]
        finally:
            await client.close()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_recovers_again_after_each_of_several_drops(tmp_path: Path, transports: list[str]) -> None:
    # Short pings: a dropped polling session, which the server cannot see close, times out between drops.
    port = free_port()
    async with (
        server_on(tmp_path, port, ping_interval=0.5, ping_timeout=1.0) as live,
        Proxy(port) as proxy,
        orchestrator(live) as bot,
    ):
        await live.add_project("ext", external=True)
        client = alice(proxy.url, live, transports)
        try:
            states = States(client)
            events, joined = Inbox(), Inbox()
            client.on("/portal", "state_change", events)
            client.on("/portal", "joined_project", joined)
            await client.connect("/portal")
            await client.join_project("ext")
            for drop in range(1, 4):
                await publish(bot, f"e{2 * drop - 1}")
                await events.wait(lambda e, n=2 * drop - 1: e.triggered_by == f"e{n}")
                proxy.cut()
                await states.wait(ConnectionState.DISCONNECTED, count=drop)
                await publish(bot, f"e{2 * drop}")
                proxy.restore()
                assert (await states.wait(ConnectionState.CONNECTED, count=drop + 1)).recovered
                await only_one_socket(live, "alice")
            await publish(bot, "e7")
            await events.wait(lambda e: e.triggered_by == "e7")
            assert events.names() == names(1, 7)
            assert len(joined.items) == 1
            assert await live.app.services.presence.users("ext") == ["alice"]
        finally:
            await client.close()


async def test_a_quiet_socket_is_recovered_without_an_offset(server: LiveServer) -> None:
    """A socket that got no broadcast before it dropped has no offset to send. Node refuses those; we
    replay from where its session began, so nothing is lost in the commonest case of all."""
    await server.add_project("ext", external=True)
    port = int(server.url.rsplit(":", 1)[1])
    async with Proxy(port) as proxy, orchestrator(server) as bot:
        client = alice(proxy.url, server, ["websocket"])
        try:
            states = States(client)
            project = Inbox()
            client.on("/project/ext", "state_change", project)
            await client.connect("/project/ext")
            proxy.cut()
            await states.wait(ConnectionState.DISCONNECTED)
            await publish(bot, *names(1, 2))
            proxy.restore()
            back = await states.wait(ConnectionState.CONNECTED, count=2)
            await publish(bot, "e3")
            await project.wait(lambda e: e.triggered_by == "e3")
            assert back.recovered is True
            assert project.names() == names(1, 3)
        finally:
            await client.close()
