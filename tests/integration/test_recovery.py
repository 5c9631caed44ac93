"""Nothing lost (decisions §7): the official client recovers missed events after a dropped connection,
after the server is killed (SIGKILL) and started again, and falls back to a snapshot beyond the window."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_states import States

from agent_portal.client import Backoff, ConnectionState, PortalClient

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"


def cli(data_dir: Path, *args: str) -> str:
    import subprocess

    env = {**os.environ, "AGENT_PORTAL_SECRET": "r" * 48}
    command = [sys.executable, "-m", "agent_portal", *args, "--data-dir", str(data_dir)]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout.strip()


@asynccontextmanager
async def server_process(
    data_dir: Path, port: int, window: float
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "AGENT_PORTAL_SECRET": "r" * 48,
        "AGENT_PORTAL_RECOVERY_WINDOW": str(window),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_portal",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        else:
            proc.kill()
            pytest.fail("server did not start")
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def next_line(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), 60)
    assert line, "the JS scenario ended early"
    return dict(json.loads(line))


async def test_official_client_recovers_across_drops_and_a_killed_server(tmp_path: Path) -> None:
    assert (JS / "node_modules" / "socket.io-client").exists(), "run scripts/bootstrap --node"
    data = tmp_path / "data"
    window = 3.0
    cli(data, "project", "add", "ext", "--external")
    config = {
        "url": "",
        "token": cli(data, "token", "--user", "alice", "--role", "member", "--project", "ext"),
        "orchestratorToken": cli(
            data, "token", "--user", "bot", "--role", "orchestrator", "--project", "ext"
        ),
    }
    port = free_port()
    config["url"] = f"http://127.0.0.1:{port}"
    async with server_process(data, port, window) as first:
        node = await asyncio.create_subprocess_exec(
            "node",
            str(JS / "recovery.mjs"),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=JS,
        )
        assert node.stdin is not None and node.stdout is not None
        phase = await next_line(node.stdout)
        assert phase == {"phase": "restart"}, phase
        first.send_signal(signal.SIGKILL)
        await first.wait()
    async with server_process(data, port, window):
        node.stdin.write(b"go\n")
        await node.stdin.drain()
        phase = await next_line(node.stdout)
        assert phase == {"phase": "wait-beyond-window"}, phase
        await asyncio.sleep(window + 1.0)
        node.stdin.write(b"go\n")
        await node.stdin.drain()
        result = await next_line(node.stdout)
        await node.wait()
    assert result["ok"], result.get("error")
    names = [r["name"] for r in result["received"]]
    assert names == [f"e{n}" for n in range(1, 12)], (
        "every event once, in order; 'lost' was beyond the window"
    )
    offsets = [int(r["offset"]) for r in result["received"]]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert result["recovered_same_server"] is True
    assert result["recovered_after_restart"] is True
    assert result["recovered_beyond_window"] is False
    assert result["snapshot"]["ok"] is True, "beyond the window, a snapshot reload works"


async def test_sigterm_lets_clients_go_at_once_and_they_recover(tmp_path: Path) -> None:
    """Graceful shutdown: in-flight work finishes, sessions are kept, sockets are closed so clients
    reconnect at once (without the drain, a long-polling client waits out uvicorn's 10 s grace)."""
    import socketio

    data = tmp_path / "data"
    cli(data, "project", "add", "ext", "--external")
    token = cli(data, "token", "--user", "alice", "--role", "member", "--project", "ext")
    port = free_port()
    async with server_process(data, port, 120.0) as proc:
        client = socketio.AsyncClient(reconnection=False)
        gone = asyncio.Event()
        reasons: list[str] = []

        @client.on("disconnect", namespace="/project/ext")  # type: ignore[misc]
        async def on_disconnect(reason: str = "") -> None:
            reasons.append(reason)
            gone.set()

        await client.connect(
            f"http://127.0.0.1:{port}",
            namespaces=["/project/ext"],
            auth={"token": token, "recovery": True},
            # A long-poll is an open HTTP request uvicorn would let run into its grace period.
            transports=["polling"],
        )
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(gone.wait(), 5)
        # uvicorn re-raises the signal once its shutdown is done, so the exit status names SIGTERM.
        assert await asyncio.wait_for(proc.wait(), 10) in (0, -signal.SIGTERM)
        assert reasons and reasons[0] != client.reason.CLIENT_DISCONNECT
    sessions = cli_sql(data, "SELECT disconnected_at IS NOT NULL FROM recovery_sessions")
    assert sessions == ["1"], "the socket's recovery session was kept, marked disconnected"


def cli_sql(data_dir: Path, sql: str) -> list[str]:
    import sqlite3

    with sqlite3.connect(data_dir / "agent-portal.db") as db:
        return [str(row[0]) for row in db.execute(sql)]


async def test_a_subscription_acked_just_before_a_sigkill_is_recovered(tmp_path: Path) -> None:
    """A connect's own session save may wait (gateway/recovery.py, FIRST_SAVE_DELAY); the subscribe's
    is written before its ack. So a server killed right after the ack still has the session."""
    data = tmp_path / "data"
    cli(data, "project", "add", "ext", "--external")
    token = cli(data, "token", "--user", "alice", "--role", "member", "--project", "ext")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    backoff = Backoff(base_delay=0.05, max_delay=0.2, max_attempts=200)
    client = PortalClient(url, token=token, transports=["websocket"], backoff=backoff)
    states = States(client)
    try:
        async with server_process(data, port, 120.0) as first:
            await client.connect("/project/ext")
            await client.subscribe("/project/ext", ["state_change"])
            first.send_signal(signal.SIGKILL)
            await first.wait()
        await states.wait(ConnectionState.DISCONNECTED)
        async with server_process(data, port, 120.0):
            back = await states.wait(ConnectionState.CONNECTED, count=2)
            assert back.recovered is True and client.recovered("/project/ext")
        sessions = cli_sql(data, "SELECT state FROM recovery_sessions")
        assert any('"subscriptions":[[null,["state_change"]]]' in s for s in sessions), sessions
    finally:
        await client.close()
