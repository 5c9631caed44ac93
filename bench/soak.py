"""Soak: many recovering clients on a two-node cluster while the nodes are restarted (bench/soak runs it).

One run: a fresh PostgreSQL database and Redis prefix, two `agent_portal serve` nodes behind an in-process
TCP balancer, C raw Socket.IO clients on /chat/demo (with connection-state recovery) spread over W worker
processes, one publisher sending numbered chat messages at a steady rate, and a restarter that SIGKILLs or
SIGTERMs a node every few seconds and starts it again. At the end it counts, per client, which numbered
messages arrived how often, and prints published / delivered / lost / duplicated.

Not a test: nothing here asserts; it is meant to be run by hand (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import psutil

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "/chat/demo"
SECRET_ENV = "AGENT_PORTAL_SECRET"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
EVENT_PREFIX = f'42{NAMESPACE},["message_received",'
CONNECT_TIMEOUT_S = 20.0
# Latency histogram: 1 ms buckets below 1 s, 100 ms buckets above (recovery replays can take seconds).
FINE_LIMIT_MS = 1000


def latency_bucket(ms: float) -> int:
    if ms < FINE_LIMIT_MS:
        return max(0, int(ms))
    return FINE_LIMIT_MS + int((ms - FINE_LIMIT_MS) // 100) * 100


def percentile(hist: Counter[int], q: float) -> float | None:
    total = sum(hist.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return float(bucket)
    return float(max(hist))


def raise_fd_limit() -> None:
    # Each client holds a socket in its worker and two in the balancer (client side and node side).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def use_uvloop() -> None:
    # The load generator shares 2 cores with both nodes: uvloop roughly halves its per-frame cost.
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def issue_token(secret: str, user: str, role: str, ttl: int) -> str:
    from agent_portal.auth.tokens import TokenService

    projects = ["*"] if role == "admin" else ["demo"]
    return str(TokenService(secret).issue(user, role, projects, ttl).token)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- raw Socket.IO over websockets -----------------------------------------------------------------


class Refused(Exception):
    """The server answered CONNECT with CONNECT_ERROR (44)."""

    def __init__(self, data: Any) -> None:
        super().__init__(str(data))
        self.code = (
            str(data.get("data", {}).get("code") or data.get("message")) if isinstance(data, dict) else "?"
        )


async def sio_connect(port: int, namespace: str, auth: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Opens a websocket, waits for the Engine.IO open packet, connects `namespace`; returns the socket and
    the CONNECT reply's data. The caller answers pings from then on."""
    from websockets.asyncio.client import connect

    ws = await connect(
        f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
        compression=None,
        ping_interval=None,  # Engine.IO has its own ping, answered below
        open_timeout=CONNECT_TIMEOUT_S,
        close_timeout=1,
        max_size=2**22,
        user_agent_header=None,
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            opened = await ws.recv()
            if not isinstance(opened, str) or not opened.startswith("0"):
                raise ConnectionError(f"unexpected open packet {opened!r}")
            await ws.send(f"40{namespace}," + json.dumps(auth))
            ok, err = f"40{namespace},", f"44{namespace},"
            while True:
                frame = await ws.recv()
                if frame == "2":
                    await ws.send("3")
                elif isinstance(frame, str) and frame.startswith(ok):
                    return ws, dict(json.loads(frame[len(ok) :]))
                elif isinstance(frame, str) and frame.startswith(err):
                    raise Refused(json.loads(frame[len(err) :]))
    except BaseException:
        await ws.close()
        raise


async def backoff() -> None:
    await asyncio.sleep(random.uniform(0.1, 0.5))


# --- the clients (worker processes) ----------------------------------------------------------------


@dataclass
class ClientState:
    counts: bytearray = field(default_factory=lambda: bytearray(8192))  # receipts per sequence number
    connected: bool = False
    connects: int = 0
    recovered: int = 0
    not_recovered: int = 0
    drops: int = 0
    # The recovery log's order is the offsets' (the server may append concurrent sends out of seq order).
    out_of_order: int = 0
    seq_inversions: int = 0
    last_offset: int = 0
    last_seq: int = 0
    max_seq: int = 0
    session_start: float = 0.0  # when the current CONNECT was sent (monotonic)
    # One [max seq before, first seq after] per reconnect that was not recovered: what fell in between was
    # missed with the session, not lost by the server.
    gaps: list[list[int]] = field(default_factory=list)
    # Per connect: [CONNECT sent (monotonic), recovered (1/0, -1 for the first), offset asked for, max seq
    # before, first seq after, receipts in the session]; read only for clients that lost something.
    sessions: list[list[Any]] = field(default_factory=list)


class Worker:
    def __init__(self, port: int, tokens: list[str]) -> None:
        self.port = port
        self.tokens = tokens
        self.states = [ClientState() for _ in tokens]
        self.latency_live: Counter[int] = Counter()
        self.latency_replayed: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.receipts = 0
        self.stopping = False
        self.first_connects = asyncio.Semaphore(50)  # the start only: a stampede of 500 is no test

    async def client(self, index: int) -> None:
        state = self.states[index]
        token = self.tokens[index]
        pid: str | None = None
        offset: str | None = None
        while not self.stopping:
            auth: dict[str, Any] = {"token": token, "recovery": True}
            if pid is not None:
                auth["pid"] = pid
                if offset is not None:
                    auth["offset"] = offset
            began = time.monotonic()
            try:
                if state.connects == 0:
                    async with self.first_connects:
                        ws, reply = await sio_connect(self.port, NAMESPACE, auth)
                else:
                    ws, reply = await sio_connect(self.port, NAMESPACE, auth)
            except Refused as exc:
                self.errors[f"connect refused: {exc.code}"] += 1
                await backoff()
                continue
            except Exception as exc:
                self.errors[f"connect failed: {type(exc).__name__}"] += 1
                await backoff()
                continue
            new_pid = str(reply.get("pid"))
            recovered = -1
            if state.connects > 0:
                recovered = int(new_pid == pid)
                if recovered:
                    state.recovered += 1
                else:
                    state.not_recovered += 1
                    state.gaps.append([state.max_seq, 0])
            state.sessions.append([began, recovered, offset if pid else None, state.max_seq, 0, 0])
            state.session_start = began
            state.connects += 1
            state.connected = True
            pid = new_pid
            try:
                async for frame in ws:
                    if frame == "2":
                        await ws.send("3")
                    elif isinstance(frame, str) and frame.startswith(EVENT_PREFIX):
                        offset = self.receive(state, frame) or offset
                    elif isinstance(frame, str) and frame.startswith(f"41{NAMESPACE}"):
                        self.errors["server disconnected the namespace"] += 1
                        break
            except Exception as exc:
                self.errors[f"dropped: {type(exc).__name__}"] += 1
            finally:
                state.connected = False
                await ws.close()
            if not self.stopping:
                state.drops += 1
                await backoff()

    def receive(self, state: ClientState, frame: str) -> str | None:
        args = json.loads(frame[len(f"42{NAMESPACE},") :])
        content = str(args[1].get("content", ""))
        parts = content.split()
        if len(parts) != 3 or parts[0] != "soak":
            return None
        seq, sent = int(parts[1]), float(parts[2])
        ms = (time.monotonic() - sent) * 1000
        # Sent before this session's CONNECT: it can only have come by replay.
        (self.latency_replayed if sent < state.session_start else self.latency_live)[latency_bucket(ms)] += 1
        self.receipts += 1
        counts = state.counts
        if seq >= len(counts):
            counts.extend(bytes(max(seq + 1 - len(counts), len(counts))))
        if counts[seq] < 255:
            counts[seq] += 1
        if seq < state.last_seq:
            state.seq_inversions += 1
        state.last_seq = seq
        state.max_seq = max(state.max_seq, seq)
        if state.gaps and state.gaps[-1][1] == 0:
            state.gaps[-1][1] = seq
        session = state.sessions[-1]
        if session[4] == 0:
            session[4] = seq
        session[5] += 1
        offset = args[-1] if len(args) >= 3 else None
        if not isinstance(offset, str):
            return None
        with contextlib.suppress(ValueError):
            number = int(offset)
            if number <= state.last_offset:
                state.out_of_order += 1
            state.last_offset = max(state.last_offset, number)
        return offset

    def status(self) -> dict[str, int]:
        return {
            "connected": sum(s.connected for s in self.states),
            "receipts": self.receipts,
            "reconnects": sum(max(0, s.connects - 1) for s in self.states),
        }

    def result(self) -> dict[str, Any]:
        return {
            "clients": [
                {
                    "counts": bytes(s.counts),
                    "recovered": s.recovered,
                    "not_recovered": s.not_recovered,
                    "drops": s.drops,
                    "out_of_order": s.out_of_order,
                    "seq_inversions": s.seq_inversions,
                    "gaps": s.gaps,
                    "sessions": s.sessions,
                }
                for s in self.states
            ],
            "latency_live": dict(self.latency_live),
            "latency_replayed": dict(self.latency_replayed),
            "errors": dict(self.errors),
        }


def worker_main(conn: Connection, port: int, tokens: list[str]) -> None:
    raise_fd_limit()
    use_uvloop()
    # Ctrl-C reaches the whole process group: the coordinator decides when the workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(worker_loop(conn, port, tokens))


async def worker_loop(conn: Connection, port: int, tokens: list[str]) -> None:
    worker = Worker(port, tokens)
    tasks = [asyncio.create_task(worker.client(i)) for i in range(len(tokens))]
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    fd = conn.fileno()

    def readable() -> None:
        # The loop made the pipe non-blocking; a pickled message must be read (and written) whole.
        os.set_blocking(fd, True)
        commands.put_nowait(conn.recv())

    loop.add_reader(fd, readable)
    while True:
        command = await commands.get()
        if command == "status":
            conn.send(worker.status())
        elif command == "stop":
            worker.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.remove_reader(fd)
            os.set_blocking(fd, True)
            conn.send(worker.result())
            return


class WorkerHandle:
    def __init__(self, ctx: Any, port: int, tokens: list[str]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, port, tokens), daemon=True)
        self.proc.start()
        child.close()

    async def ask(self, command: str, within_s: float = 60.0) -> Any:
        fd = self.conn.fileno()
        os.set_blocking(fd, True)
        self.conn.send(command)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, within_s)
        finally:
            loop.remove_reader(fd)
        # The loop made the pipe non-blocking; the reply (megabytes at the end) must be read whole.
        os.set_blocking(fd, True)
        return self.conn.recv()


# --- the balancer ----------------------------------------------------------------------------------


class _Side(asyncio.Protocol):
    """One end of a proxied connection; bytes go straight to the peer's transport (no streams: at
    20 000 frames/s the balancer must stay cheap)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending += data

    def eof_received(self) -> bool:
        self.close_both()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.close_both()

    def close_both(self) -> None:
        # Either side ending ends both: a node that died takes its clients' connections with it.
        for side in (self, self.peer):
            if side is not None and side.transport is not None and not side.transport.is_closing():
                side.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _ClientSide(_Side):
    def __init__(self, balancer: Balancer) -> None:
        super().__init__()
        self.balancer = balancer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Nothing is read until the node side is connected.
        self.transport.pause_reading()  # type: ignore[union-attr]
        self.balancer.link(self)


class Balancer:
    """Round-robin over the nodes for each new connection, the next node when one refuses."""

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self.port = 0
        self.accepted: Counter[int] = Counter()
        self.refused = 0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._downstream, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def _downstream(self) -> _Side:
        return _ClientSide(self)

    def link(self, down: _Side) -> None:
        task = asyncio.ensure_future(self._link(down))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _link(self, down: _Side) -> None:
        assert down.transport is not None
        loop = asyncio.get_running_loop()
        start = self._next
        self._next = (self._next + 1) % len(self.upstreams)
        for i in range(len(self.upstreams)):
            port = self.upstreams[(start + i) % len(self.upstreams)]
            try:
                _, up = await asyncio.wait_for(loop.create_connection(_Side, "127.0.0.1", port), 3)
            except (OSError, TimeoutError):
                continue
            self.accepted[port] += 1
            if down.closed:
                assert up.transport is not None
                up.transport.close()
                return
            up.peer, down.peer = down, up
            if down.pending:
                assert up.transport is not None
                up.transport.write(bytes(down.pending))
                down.pending.clear()
            down.transport.resume_reading()
            return
        self.refused += 1
        down.transport.close()


# --- the cluster -----------------------------------------------------------------------------------


class Node:
    def __init__(self, name: str, port: int, run_dir: Path, database_url: str, cluster: str, secret: str):
        self.name = name
        self.port = port
        self.run_dir = run_dir
        self.database_url = database_url
        self.cluster = cluster
        self.secret = secret
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.unexpected_exits: list[int] = []
        self.log_path = run_dir / f"{name}.log"

    async def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n===== soak: start #{self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        # fmt: off
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_portal", "serve", "--port", str(self.port),
            "--data-dir", str(self.run_dir / self.name), "--database-url", self.database_url,
            "--redis-url", REDIS_URL, "--cluster-name", self.cluster, "--text-logs",
            env={**os.environ, SECRET_ENV: self.secret}, stdout=log, stderr=log,
            stdin=asyncio.subprocess.DEVNULL, cwd=ROOT, start_new_session=True,
        )
        # fmt: on
        log.close()
        await self.wait_healthy()

    async def wait_healthy(self, within_s: float = 60.0) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.returncode is not None:
                    raise RuntimeError(
                        f"node {self.name} exited ({self.proc.returncode}), see {self.log_path}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    response = await http.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                    if response.status_code == 200:
                        return dict(response.json())
                await asyncio.sleep(0.1)
        raise RuntimeError(f"node {self.name} not healthy after {within_s} s, see {self.log_path}")

    async def stop(self, sig: signal.Signals, within_s: float = 20.0) -> bool:
        """Sends `sig` and waits; True when it exited in time (else it is killed)."""
        if self.proc is None or self.proc.returncode is not None:
            return True
        self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), within_s)
            return True
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return False


async def create_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_redis_keys(prefix: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await client.delete(*batch)
                batch = []
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


# --- the publisher and the restarter ---------------------------------------------------------------


@dataclass
class PublisherStats:
    acked: dict[int, float] = field(default_factory=dict)  # seq -> seconds since the run started
    unacked: list[int] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    skipped_ticks: int = 0
    reconnects: int = 0
    ack_ms: Counter[int] = field(default_factory=Counter)
    next_seq: int = 1


async def raise_rate_limits(port: int, admin_token: str) -> dict[str, Any]:
    """Lifts the per-user rate limits for the whole cluster (the live config is shared)."""
    ws, _ = await sio_connect(port, "/admin", {"token": admin_token})
    try:
        changes = {"events_per_second": 1000, "events_per_minute": 60000}
        body = {"config_type": "security", "changes": changes, "reason": "soak"}
        await ws.send("42/admin,1" + json.dumps(["update_config", body]))
        async with asyncio.timeout(15):
            while True:
                frame = await ws.recv()
                if frame == "2":
                    await ws.send("3")
                elif isinstance(frame, str) and frame.startswith("43/admin,1"):
                    reply = json.loads(frame[len("43/admin,1") :])[0]
                    if not reply.get("ok"):
                        raise RuntimeError(f"update_config refused: {reply}")
                    return dict(reply)
    finally:
        await ws.close()


async def publish(
    port: int, token: str, rate: float, until: float, started: float, stats: PublisherStats
) -> None:
    """Sends `soak <seq> <monotonic send time>` at `rate`/s until `until`; a message counts as published
    when its ack says ok. Ticks that find no connection are skipped, not queued (the rate stays steady)."""
    pending: dict[int, tuple[int, float]] = {}  # ack id -> (seq, send time)
    drained = asyncio.Event()  # set when the last pending ack arrives
    ws: Any = None
    reader: asyncio.Task[None] | None = None
    connecting: asyncio.Task[None] | None = None

    async def read(sock: Any) -> None:
        prefix = f"43{NAMESPACE},"
        with contextlib.suppress(Exception):
            async for frame in sock:
                if frame == "2":
                    await sock.send("3")
                elif isinstance(frame, str) and frame.startswith(prefix):
                    rest = frame[len(prefix) :]
                    bracket = rest.index("[")
                    ack_id = int(rest[:bracket])
                    reply = json.loads(rest[bracket:])[0]
                    seq, sent = pending.pop(ack_id, (0, 0.0))
                    if not seq:
                        continue
                    if reply.get("ok"):
                        stats.acked[seq] = sent - started
                        stats.ack_ms[latency_bucket((time.monotonic() - sent) * 1000)] += 1
                    else:
                        stats.refused[str(reply.get("error", {}).get("code", reply))] += 1
                    if not pending:
                        drained.set()

    async def connect() -> None:
        nonlocal ws, reader
        while True:
            try:
                sock, _ = await sio_connect(port, NAMESPACE, {"token": token})
                break
            except Exception:
                await backoff()
        ws = sock
        reader = asyncio.create_task(read(sock))

    await connect()
    interval = 1.0 / rate
    next_at = time.monotonic()
    ack_id = 0
    while True:
        next_at += interval
        if next_at >= until:
            break
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if reader is not None and reader.done():
            # The connection ended: what it had not acknowledged never will be.
            stats.unacked.extend(seq for seq, _ in pending.values())
            pending.clear()
            ws, reader = None, None
            stats.reconnects += 1
            connecting = asyncio.create_task(connect())
        if ws is None:
            stats.skipped_ticks += 1
            continue
        connecting = None
        ack_id += 1
        seq = stats.next_seq
        stats.next_seq += 1
        sent = time.monotonic()
        pending[ack_id] = (seq, sent)
        body = {"content": f"soak {seq} {sent:.6f}", "type": "message"}
        try:
            await ws.send(f"42{NAMESPACE},{ack_id}" + json.dumps(["send_message", body]))
        except Exception:
            continue  # the reader sees the same end and the seq goes to unacked with the rest
    # Let the last acks arrive.
    if pending and reader is not None:
        drained.clear()
        waiter = asyncio.ensure_future(drained.wait())
        await asyncio.wait([waiter, reader], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    stats.unacked.extend(seq for seq, _ in pending.values())
    if connecting is not None:
        connecting.cancel()
    if ws is not None:
        await ws.close()
    if reader is not None:
        reader.cancel()


@dataclass
class Restart:
    at_s: float
    node: str
    signal: str
    stopped_in_s: float
    exited_in_time: bool
    healthy_after_s: float = 0.0
    error: str | None = None


async def restarter(
    nodes: list[Node],
    every: float,
    delay: float,
    until: float,
    started: float,
    log: list[Restart],
    restarting: set[str],
) -> None:
    i = 0
    next_at = time.monotonic() + every
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        node = nodes[i % len(nodes)]
        # a KILL, b KILL, a TERM, b TERM, ...: each node meets both signals.
        sig = signal.SIGKILL if (i // len(nodes)) % 2 == 0 else signal.SIGTERM
        t0 = time.monotonic()
        restarting.add(node.name)
        exited = await node.stop(sig)
        entry = Restart(round(t0 - started, 1), node.name, sig.name, round(time.monotonic() - t0, 2), exited)
        log.append(entry)
        print(
            f"[{t0 - started:6.1f}s] {sig.name} {node.name}: exited in {entry.stopped_in_s:.2f} s", flush=True
        )
        await asyncio.sleep(delay)
        try:
            await node.start()
            entry.healthy_after_s = round(time.monotonic() - t0, 2)
        except RuntimeError as exc:
            entry.error = str(exc)
            print(f"restart failed: {exc}", flush=True)
        restarting.discard(node.name)
        i += 1
        next_at = t0 + every


async def watch_nodes(nodes: list[Node], restarting: set[str]) -> None:
    """Notes a node that exits by itself (not by the restarter)."""
    seen: set[int] = set()
    while True:
        await asyncio.sleep(0.5)
        for node in nodes:
            proc = node.proc
            if proc is None or proc.returncode is None or node.name in restarting or id(proc) in seen:
                continue
            seen.add(id(proc))
            node.unexpected_exits.append(proc.returncode)
            print(f"!! node {node.name} exited by itself ({proc.returncode})", flush=True)


# --- the run ---------------------------------------------------------------------------------------


async def statuses(workers: list[WorkerHandle]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for w in workers:
        total.update(await w.ask("status"))
    return dict(total)


def analyse(
    args: argparse.Namespace,
    stats: PublisherStats,
    results: list[dict[str, Any]],
    restarts: list[Restart],
    duration: float,
    balancer: Balancer,
    nodes: list[Node],
    started: float,
) -> dict[str, Any]:
    acked = sorted(stats.acked)
    unacked = set(stats.unacked)
    clients = [c for r in results for c in r["clients"]]
    lost = missed_unrecovered = missed_in_gaps = dup = delivered = delivered_unacked = 0
    lost_by_seq: Counter[int] = Counter()
    affected_clients = lost_clients = 0
    examples: list[dict[str, Any]] = []
    for index, c in enumerate(clients):
        counts: bytes = c["counts"]
        have = [seq for seq in acked if seq < len(counts) and counts[seq] > 0]
        delivered += len(have)
        dup += sum(n - 1 for n in counts if n > 1)
        delivered_unacked += sum(1 for seq in unacked if seq < len(counts) and counts[seq] > 0)
        missing = [seq for seq in acked if seq >= len(counts) or counts[seq] == 0]
        if not missing:
            continue
        affected_clients += 1
        if c["not_recovered"]:
            missed_unrecovered += len(missing)
            gaps = [(lo, hi or 1 << 62) for lo, hi in c["gaps"]]
            missed_in_gaps += sum(1 for seq in missing if any(lo < seq < hi for lo, hi in gaps))
        else:
            lost_clients += 1
            lost += len(missing)
            lost_by_seq.update(missing)
        if len(examples) < 5:
            sessions = [
                {
                    "connect_sent_at_s": round(t - started, 2),
                    "recovered": {1: True, 0: False}.get(rec),
                    "offset_asked": off,
                    "max_seq_before": before,
                    "first_seq_after": first,
                    "receipts": got,
                }
                for t, rec, off, before, first, got in c["sessions"]
            ]
            examples.append({"client": index, "missing": seq_ranges(missing), "sessions": sessions})
    live: Counter[int] = Counter()
    replayed: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for r in results:
        live.update({int(k): v for k, v in r["latency_live"].items()})
        replayed.update({int(k): v for k, v in r["latency_replayed"].items()})
        errors.update(r["errors"])
    n = len(clients)
    lost_ranges = [
        {
            "seqs": f"{lo}-{hi}",
            "published_at_s": f"{stats.acked[lo]:.1f}-{stats.acked[hi]:.1f}",
            "clients_max": max(lost_by_seq[q] for q in range(lo, hi + 1) if q in lost_by_seq),
        }
        for lo, hi in seq_ranges(sorted(lost_by_seq))
    ]
    return {
        "clients": n,
        "workers": args.workers,
        "duration_s": round(duration, 1),
        "rate_per_s": args.rate,
        "restarts": len(restarts),
        "restarts_kill": sum(r.signal == "SIGKILL" for r in restarts),
        "restarts_term": sum(r.signal == "SIGTERM" for r in restarts),
        "term_timeouts": sum(not r.exited_in_time for r in restarts),
        "restart_failures": sum(r.error is not None for r in restarts),
        "unexpected_node_exits": sum(len(nd.unexpected_exits) for nd in nodes),
        "published_acked": len(acked),
        "publish_unacked": len(unacked),
        "publish_refused": dict(stats.refused),
        "publish_skipped_ticks": stats.skipped_ticks,
        "publisher_reconnects": stats.reconnects,
        "expected": len(acked) * n,
        "delivered": delivered,
        "lost": lost,
        "lost_clients": lost_clients,
        "missed_not_recovered": missed_unrecovered,
        "missed_not_recovered_in_gap": missed_in_gaps,
        "clients_with_missing": affected_clients,
        "duplicated": dup,
        "delivered_unacked": delivered_unacked,
        "out_of_order": sum(c["out_of_order"] for c in clients),
        "seq_inversions": sum(c["seq_inversions"] for c in clients),
        "reconnects": sum(c["recovered"] + c["not_recovered"] for c in clients),
        "recovered": sum(c["recovered"] for c in clients),
        "not_recovered": sum(c["not_recovered"] for c in clients),
        "clients_not_recovered": sum(1 for c in clients if c["not_recovered"]),
        "drops": sum(c["drops"] for c in clients),
        "live_receipts": sum(live.values()),
        "replayed_receipts": sum(replayed.values()),
        "latency_p50_ms": percentile(live, 0.5),
        "latency_p99_ms": percentile(live, 0.99),
        "latency_max_ms": float(max(live)) if live else None,
        "replay_latency_p50_ms": percentile(replayed, 0.5),
        "replay_latency_p99_ms": percentile(replayed, 0.99),
        "ack_p50_ms": percentile(stats.ack_ms, 0.5),
        "ack_p99_ms": percentile(stats.ack_ms, 0.99),
        "balancer_accepted": {str(k): v for k, v in balancer.accepted.items()},
        "balancer_refused": balancer.refused,
        "client_errors": dict(errors.most_common()),
        "lost_ranges": lost_ranges,
        "clients_with_missing_examples": examples,
        "restart_log": [r.__dict__ for r in restarts],
    }


def seq_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """[1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]"""
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


TABLE_ROWS = [
    ("clients", "clients"),
    ("duration (s)", "duration_s"),
    ("publish rate (/s)", "rate_per_s"),
    ("restarts (kill / term)", None),
    ("term timeouts / failed starts / node exits", None),
    ("published (acked)", "published_acked"),
    ("sends not acked", "publish_unacked"),
    ("sends refused", "publish_refused"),
    ("publisher ticks skipped (no connection)", "publish_skipped_ticks"),
    ("expected (published × clients)", "expected"),
    ("delivered (unique receipts)", "delivered"),
    ("lost (clients always recovered)", "lost"),
    ("  clients with a loss", "lost_clients"),
    ("missed by not-recovered clients", "missed_not_recovered"),
    ("  of which between drop and new session", "missed_not_recovered_in_gap"),
    ("duplicated receipts", "duplicated"),
    ("receipts of unacked sends", "delivered_unacked"),
    ("out-of-order receipts (by offset)", "out_of_order"),
    ("connection drops", "drops"),
    ("reconnects", "reconnects"),
    ("  recovered", "recovered"),
    ("  not recovered", "not_recovered"),
    ("  clients with a non-recovered reconnect", "clients_not_recovered"),
    ("clients connected at the end", "connected_at_end"),
    ("live receipts / replayed receipts", None),
    ("publish→receipt live p50 / p99 / max (ms)", None),
    ("publish→receipt replayed p50 / p99 (ms)", None),
    ("publish ack p50 / p99 (ms)", None),
    ("load generator CPU s (balancer+publisher / workers)", None),
]


def table(summary: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    for label, key in TABLE_ROWS:
        if key is not None:
            value = summary[key]
            text = f"{value:,}" if isinstance(value, int) else str(value)
        elif label.startswith("restarts"):
            text = f"{summary['restarts']} ({summary['restarts_kill']} / {summary['restarts_term']})"
        elif label.startswith("term timeouts"):
            text = f"{summary['term_timeouts']} / {summary['restart_failures']} / {summary['unexpected_node_exits']}"
        elif label.startswith("load generator"):
            text = f"{summary['cpu_s_main']} / {summary['cpu_s_workers']}"
        elif label.startswith("live receipts"):
            text = f"{summary['live_receipts']:,} / {summary['replayed_receipts']:,}"
        elif label.startswith("publish→receipt live"):
            text = f"{summary['latency_p50_ms']} / {summary['latency_p99_ms']} / {summary['latency_max_ms']}"
        elif label.startswith("publish→receipt replayed"):
            text = f"{summary['replay_latency_p50_ms']} / {summary['replay_latency_p99_ms']}"
        else:
            text = f"{summary['ack_p50_ms']} / {summary['ack_p99_ms']}"
        rows.append((label, text))
    width = max(len(label) for label, _ in rows)
    lines = [f"| {'metric'.ljust(width)} | value |", f"|{'-' * (width + 2)}|------:|"]
    lines += [f"| {label.ljust(width)} | {text} |" for label, text in rows]
    return "\n".join(lines)


async def run(args: argparse.Namespace, tag: str, run_dir: Path) -> dict[str, Any]:
    cluster = f"soak-{tag}"
    db_name = f"soak_{tag}"
    secret = secrets.token_urlsafe(48)
    print(f"soak {tag}: logs in {run_dir}, database {db_name}, cluster {cluster}", flush=True)
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db_name}"
    nodes = [Node(name, free_port(), run_dir, database_url, cluster, secret) for name in ("a", "b")]
    balancer = Balancer([n.port for n in nodes])
    workers: list[WorkerHandle] = []
    watcher: asyncio.Task[None] | None = None
    ttl = int(args.duration) + 3600
    await create_database(db_name)
    try:
        # One after the other the first time: the first node creates the admin user and project demo.
        for node in nodes:
            await node.start()
        await balancer.start()
        await raise_rate_limits(balancer.port, issue_token(secret, "admin", "admin", ttl))
        tokens = [issue_token(secret, f"soak-c{i:05d}", "member", ttl) for i in range(args.clients)]
        ctx = mp.get_context("spawn")  # not fork: this process already runs an event loop
        share = [tokens[w :: args.workers] for w in range(args.workers)]
        workers = [WorkerHandle(ctx, balancer.port, part) for part in share]
        t0 = time.monotonic()
        while (status := await statuses(workers))["connected"] < args.clients:
            if time.monotonic() - t0 > 180:
                raise RuntimeError(f"only {status['connected']} of {args.clients} clients connected")
            await asyncio.sleep(0.5)
        print(f"{args.clients} clients connected in {time.monotonic() - t0:.1f} s", flush=True)

        started = time.monotonic()
        until = started + args.duration
        stats = PublisherStats()
        restarts: list[Restart] = []
        restarting: set[str] = set()
        publisher_token = issue_token(secret, "soak-publisher", "member", ttl)
        publisher = asyncio.create_task(
            publish(balancer.port, publisher_token, args.rate, until, started, stats)
        )
        restart_task = asyncio.create_task(
            restarter(nodes, args.restart_every, args.restart_delay, until, started, restarts, restarting)
        )
        watcher = asyncio.create_task(watch_nodes(nodes, restarting))
        while not publisher.done():
            await asyncio.wait([publisher], timeout=10)
            status = await statuses(workers)
            busy = psutil.cpu_percent()
            up = "".join(n.name if n.proc and n.proc.returncode is None else "-" for n in nodes)
            print(
                f"[{time.monotonic() - started:6.1f}s] published {len(stats.acked)} unacked {len(stats.unacked)}"
                f" | connected {status['connected']}/{args.clients} receipts {status['receipts']:,}"
                f" reconnects {status['reconnects']} | nodes {up} | machine CPU {busy:.0f}%",
                flush=True,
            )
        await publisher
        await restart_task
        duration = time.monotonic() - started

        # Settle: every client back and no receipt for `settle` seconds (bounded).
        quiet_since, last, t_settle = time.monotonic(), -1, time.monotonic()
        while time.monotonic() - t_settle < args.settle_max:
            status = await statuses(workers)
            if status["receipts"] != last or status["connected"] < args.clients:
                quiet_since, last = time.monotonic(), status["receipts"]
            elif time.monotonic() - quiet_since >= args.settle:
                break
            await asyncio.sleep(0.5)
        print(f"settled after {time.monotonic() - t_settle:.1f} s", flush=True)
        worker_cpu = sum(sum(psutil.Process(w.proc.pid).cpu_times()[:2]) for w in workers)
        results = [await w.ask("stop", within_s=120) for w in workers]
        summary = analyse(args, stats, results, restarts, duration, balancer, nodes, started)
        summary["connected_at_end"] = status["connected"]
        summary["cpu_s_main"] = round(sum(psutil.Process().cpu_times()[:2]), 1)
        summary["cpu_s_workers"] = round(worker_cpu, 1)
        summary["logs"] = str(run_dir)
        print()
        print(table(summary))
        print()
        for key in ("publish_refused", "client_errors", "balancer_accepted", "lost_ranges"):
            print(f"{key}: {json.dumps(summary[key])}")
        return summary
    finally:
        if watcher is not None:
            watcher.cancel()
        for w in workers:
            if w.proc.is_alive():
                w.proc.terminate()
        balancer.stop()
        for node in nodes:
            await node.stop(signal.SIGTERM, within_s=10)
        await drop_database(db_name)
        deleted = await delete_redis_keys(cluster)
        print(f"cleaned up: database {db_name} dropped, {deleted} Redis keys deleted; logs kept in {run_dir}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--rate", type=float, default=20.0, help="messages published per second")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of publishing")
    parser.add_argument("--restart-every", type=float, default=20.0, help="seconds between node restarts")
    parser.add_argument("--restart-delay", type=float, default=2.0, help="seconds a stopped node stays down")
    parser.add_argument("--settle", type=float, default=5.0, help="quiet seconds that end the run")
    parser.add_argument("--settle-max", type=float, default=60.0, help="longest wait for the quiet")
    parser.add_argument("--out", help="also write the summary as JSON here")
    parser.add_argument("--logs-dir", help="where node logs go (default: a new temp dir, kept)")
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    raise_fd_limit()
    use_uvloop()
    tag = secrets.token_hex(4)
    run_dir = Path(args.logs_dir or tempfile.mkdtemp(prefix=f"soak-{tag}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(run(args, tag, run_dir))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
