"""Two nodes, one cluster (decisions §9), on the machine's PostgreSQL and Redis: real server
processes, python-socketio clients on each node, and the official JS client through a load balancer.

One story: events and presence cross nodes; commands sent to the node without the orchestrator run on
the one with it; the orchestrator's node is killed (SIGKILL) while messages flow, the other node
takes the lease within seconds, the JS client reconnects through the balancer to the survivor and
recovers every message, in order, once; the dead node's users leave presence. Then the killed node
comes back, the survivor stops with SIGTERM, and the lease moves at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from proxy import FailoverProxy

from agent_portal.auth.tokens import TokenService
from support import Recorder, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.node]

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"
SECRET = "c" * 48


def token(user: str, role: str = "member") -> str:
    projects = ["*"] if role == "admin" else ["demo"]
    return TokenService(SECRET).issue(user, role, projects, 3600).token  # type: ignore[arg-type]


class Node:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            return dict((await http.get(f"{self.url}/healthz", timeout=2)).json())


@asynccontextmanager
async def node_process(
    tmp: Path, name: str, port: int, database_url: str, redis_url: str, cluster: str
) -> AsyncIterator[Node]:
    env = {**os.environ, "AGENT_PORTAL_SECRET": SECRET}
    log = (tmp / f"{name}.log").open("ab")
    # fmt: off
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent_portal", "serve", "--port", str(port),
        "--data-dir", str(tmp / name), "--database-url", database_url,
        "--redis-url", redis_url, "--cluster-name", cluster, "--text-logs",
        env=env, stdout=log, stderr=log,
    )
    # fmt: on
    node = Node(proc, port)
    for _ in range(300):
        try:
            await node.health()
            break
        except httpx.TransportError:
            if proc.returncode is not None:
                pytest.fail(f"node {name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
            await asyncio.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"node {name} did not start")
    try:
        yield node
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


class Cluster:
    """Server processes of one cluster on the test PostgreSQL and Redis, under a key prefix of its own;
    node `i` always listens on `ports[i]` (a restarted node takes its place)."""

    def __init__(self, tmp: Path, database_url: str, redis_url: str) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.redis_url = redis_url
        self.name = f"test-{uuid.uuid4().hex[:10]}"
        self.ports = [free_port(), free_port()]

    def node(self, name: str, index: int) -> Any:
        return node_process(self.tmp, name, self.ports[index], self.database_url, self.redis_url, self.name)


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Cluster]:
    import redis

    made = Cluster(tmp_path, postgres_url, redis_url)
    yield made
    # The nodes are gone; what they kept in Redis goes too.
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{made.name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


async def client(url: str, namespace: str, user_token: str) -> Recorder:
    sio = socketio.AsyncClient(reconnection=False)
    recorder = Recorder(sio, namespace)
    await sio.connect(
        url, namespaces=[namespace], auth={"token": user_token}, transports=["websocket"], wait_timeout=5
    )
    return recorder


async def client_soon(url: str, namespace: str, user_token: str, within: float) -> Recorder:
    """`client`, tried again while it is refused, for up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        sio = socketio.AsyncClient(reconnection=False)
        recorder = Recorder(sio, namespace)
        try:
            await sio.connect(
                url,
                namespaces=[namespace],
                auth={"token": user_token},
                transports=["websocket"],
                wait_timeout=5,
            )
            return recorder
        except socketio.exceptions.ConnectionError:
            await sio.disconnect()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def wait_until(check: Any, timeout: float, what: str, every: float = 0.1) -> float:
    """Polls an async check until it is true; returns how long it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


class JsClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(json.loads(line))

    def phases(self, phase: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("phase") == phase]

    async def report(self) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"report\n")
        await self.proc.stdin.drain()
        await asyncio.wait_for(self.proc.wait(), 10)
        await self._reader
        return list(next(line for line in self.lines if "received" in line)["received"])


async def say(chat: Recorder, text: str) -> dict[str, Any]:
    before = len(chat.of("command_result"))
    reply = await chat.call("send_message", {"content": text, "type": "command"}, timeout=15)
    assert reply["ok"], reply
    await chat.wait_for("command_result", lambda _r: len(chat.of("command_result")) > before, timeout=15)
    return dict(chat.of("command_result")[before])


async def test_two_nodes_share_events_presence_and_the_orchestrator(
    cluster: Cluster,
) -> None:
    assert (JS / "node_modules" / "socket.io-client").exists(), "run scripts/bootstrap --node"
    async with cluster.node("a", 0) as a, cluster.node("b", 1) as b:
        assert (await a.health())["orchestrator"] is True, "the first node takes the lease"
        assert (await b.health())["orchestrator"] is False

        # Presence and events cross nodes.
        alice = await client(a.url, "/portal", token("alice"))
        bob = await client(b.url, "/portal", token("bob"))
        await alice.call("join_project", {"project_name": "demo"})
        joined = await bob.call("join_project", {"project_name": "demo"})
        assert joined["data"]["active_users"] == 2, "alice (node a) and bob (node b)"
        assert (await alice.wait_for("user_joined"))["user_id"] == "bob"

        # A command given on node b runs on node a's orchestrator; its events reach both nodes.
        chat_b = await client(b.url, "/chat/demo", token("bob"))
        project_a = await client(a.url, "/project/demo", token("alice"))
        project_b = await client(b.url, "/project/demo", token("bob"))
        result = await say(chat_b, '/backlog add_story "Login form"')
        assert result["success"] is True, result
        await project_a.wait_for("backlog_updated", lambda u: u["change_type"] == "added")

        # The official client, through the balancer (node a first, b as backup).
        proxy = FailoverProxy(cluster.ports)
        await proxy.start()
        config = {"url": f"http://127.0.0.1:{proxy.port}", "token": token("carol"), "project": "demo"}
        node = await asyncio.create_subprocess_exec(
            "node",
            str(JS / "cluster.mjs"),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=JS,
        )
        carol = JsClient(node)

        async def carol_connected() -> bool:
            return len(carol.phases("connected")) == 1

        await wait_until(carol_connected, 10, "the JS client to connect")
        assert proxy.accepted == [a.port]

        # Messages flow from node b; node a is killed in the middle of the run.
        sent: list[str] = []

        async def send_run() -> None:
            for n in range(40):
                content = f"m{n:02d}"
                reply = await chat_b.call("send_message", {"content": content, "type": "message"})
                assert reply["ok"], reply
                sent.append(content)
                await asyncio.sleep(0.12)  # under the 10 events/s limit

        run = asyncio.create_task(send_run())

        async def some_sent() -> bool:
            return len(sent) >= 12

        await wait_until(some_sent, 10, "the run to start")
        a.proc.send_signal(signal.SIGKILL)
        await a.proc.wait()

        async def b_leads() -> bool:
            return bool((await b.health())["orchestrator"])

        takeover = await wait_until(b_leads, 10, "node b to take the orchestrator lease")
        await run

        async def carol_back() -> bool:
            return len(carol.phases("connected")) == 2

        await wait_until(carol_back, 10, "the JS client to reconnect")
        assert proxy.accepted[-1] == b.port
        assert carol.phases("connected")[1]["recovered"] is True, "same session on the other node"
        # Nothing more is in flight: every message of the run was acknowledged by node b.
        await asyncio.sleep(0.5)
        received = await carol.report()
        contents = [r["content"] for r in received]
        assert contents == sent == [f"m{n:02d}" for n in range(40)], "all, in order, once"
        offsets = [int(r["offset"]) for r in received]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)

        # The new holder serves commands (from the database: the story added before is there).
        result = await say(chat_b, '/backlog add_story "Logout button"')
        assert result["success"] is True, result
        snapshot = (await project_b.call("get_snapshot"))["data"]
        assert {s["title"] for s in snapshot["backlog"]} >= {"Login form", "Logout button"}

        # Alice's socket was on the dead node: she leaves the presence once its heartbeat lapses.
        async def alice_gone() -> bool:
            data = (await project_b.call("get_snapshot"))["data"]
            return bool(data["active_users"] == ["bob"])

        # (polled slowly: bob's requests count against his 10 events/s)
        await wait_until(alice_gone, 15, "alice to leave the presence", every=0.5)

        # Node a comes back; node b stops gracefully (SIGTERM) and hands the lease over at once.
        async with cluster.node("a2", 0) as a2:
            assert (await a2.health())["orchestrator"] is False
            b.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(b.proc.wait(), 15)

            async def a2_leads() -> bool:
                return bool((await a2.health())["orchestrator"])

            handover = await wait_until(a2_leads, 10, "node a2 to take the lease")
            assert handover < 2.0, f"a graceful stop releases the lease ({handover:.1f} s)"
        await proxy.stop()
    print(f"takeover after SIGKILL: {takeover:.1f} s; handover after SIGTERM: {handover:.1f} s")


async def test_external_orchestrators_are_reached_from_any_node(
    cluster: Cluster,
) -> None:
    async with cluster.node("a", 0) as a, cluster.node("b", 1) as b:
        env = {**os.environ, "AGENT_PORTAL_SECRET": SECRET}
        # fmt: off
        added = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_portal", "project", "add", "ext", "--external",
            "--database-url", cluster.database_url, "--data-dir", str(cluster.tmp / "cli"), env=env,
        )
        # fmt: on
        assert await added.wait() == 0

        # The external orchestrator is connected to node a and answers commands there.
        bot = socketio.AsyncClient(reconnection=False)
        commands: list[dict[str, Any]] = []

        @bot.on("command", namespace="/orchestrator")  # type: ignore[misc]
        async def on_command(request: dict[str, Any]) -> dict[str, Any]:
            commands.append(request)
            return {"success": True, "result": {"message": f"ran {request['command']} on node a"}}

        bot_token = TokenService(SECRET).issue("bot", "orchestrator", ["ext"], 3600).token
        await bot.connect(
            a.url, namespaces=["/orchestrator"], auth={"token": bot_token}, transports=["websocket"]
        )

        # A user on node b gives a command: it is answered by the orchestrator on node a.
        user = TokenService(SECRET).issue("dana", "member", ["ext"], 3600).token
        chat_b = await client(b.url, "/chat/ext", user)
        result = await say(chat_b, "/sprint status")
        assert result["success"] is True and "on node a" in str(result), result
        assert [c["command"] for c in commands] == ["/sprint status"]
        assert commands[0]["user_id"] == "dana"

        # What the orchestrator publishes on node a is in node b's snapshot too.
        published = await bot.call(
            "publish",
            {
                "event": "state_change",
                "data": {
                    "project_name": "ext",
                    "old_state": "IDLE",
                    "new_state": "BACKLOG_READY",
                    "timestamp": "2026-11-26T00:00:00Z",
                    "triggered_by": "bot",
                },
            },
            namespace="/orchestrator",
        )
        assert published["ok"], published
        project_b = await client(b.url, "/project/ext", user)

        async def projected() -> bool:
            snapshot = (await project_b.call("get_snapshot"))["data"]
            return bool(snapshot["current_state"] == "BACKLOG_READY")

        await wait_until(projected, 5, "node b's projection of the external project", every=0.3)

        # Once the orchestrator is gone, node b says so instead of waiting.
        await bot.disconnect()
        await asyncio.sleep(0.3)
        reply = await chat_b.call("send_message", {"content": "/sprint status", "type": "command"})
        result = await chat_b.wait_for(
            "command_result", lambda r: r is not None and not r["success"], timeout=10
        )
        assert reply["ok"] and "No orchestrator" in result["error"], result


async def test_limits_and_connection_caps_are_cluster_wide(
    cluster: Cluster,
) -> None:
    async with cluster.node("a", 0) as a, cluster.node("b", 1) as b:
        erin = token("erin")
        # Five sessions, three on one node and two on the other: the sixth is refused on either.
        sessions = [await client(node.url, "/portal", erin) for node in (a, a, a, b, b)]
        for node in (a, b):
            refused = socketio.AsyncClient(reconnection=False)
            errors: list[Any] = []
            refused.on("connect_error", errors.append, namespace="/portal")
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(
                    node.url, namespaces=["/portal"], auth={"token": erin}, transports=["websocket"]
                )
            await refused.disconnect()
            assert errors[0]["data"]["code"] == "too_many_connections", errors
        await sessions[0].close()
        # A freed slot is free on every node, once node a has handled the disconnect, which the
        # client's disconnect() does not wait for: connected straight after, node b could still
        # count it (a CI run refused it once).
        sessions[0] = await client_soon(b.url, "/portal", erin, within=2.0)
        a_one = sessions[1]

        # Ten events a second in all: spread over both nodes, the eleventh is refused.
        leave = {"project_name": "demo"}  # a harmless event (erin joined nothing)
        replies = await asyncio.gather(
            *(s.call("leave_project", leave) for s in [*sessions, *sessions, a_one])
        )
        refusals = [r for r in replies if not r["ok"]]
        assert len(replies) == 11 and len(refusals) == 1, replies
        assert refusals[0]["error"]["code"] == "rate_limited"
