"""Runs every workload against every server in alternation and writes the medians (bench/run is the entry).

For each repetition, each case (workload, N) and each server in turn (A B A B ...): start a fresh server
process on a free loopback port, run bench/node/loadgen.js against it, sample the server's CPU time and
RSS with psutil whenever the load generator prints a MARK, stop the server.

The cluster kinds (`product-cluster1`, `product-cluster2`) are the product server as one and as two
nodes of one cluster (PostgreSQL + Redis, a fresh database and key prefix per run, removed after):
the subscribers are spread evenly over the nodes, the publisher is on the first, and the CPU time and
RSS of every node are summed; Redis's own CPU time (`INFO cpu`) is sampled at the same marks.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import report

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_DIR = BENCH / "node"
# How many nodes each cluster kind runs; they need PostgreSQL and Redis, so they are opt-in.
CLUSTER_NODES = {"product-cluster1": 1, "product-cluster2": 2}
DEFAULT_SERVERS = ("node", "stock", "portal", "product")
ALL_SERVERS = (*DEFAULT_SERVERS, *CLUSTER_NODES)
# The product server (the real app) speaks the product's protocol, not the bench one: it runs the
# broadcast workload through /orchestrator publish to /project/{name} and /monitoring, and the idle
# one with the same subscribers (token, recovery on, subscribed); the bench's `echo` ack has no
# product counterpart.
PRODUCT_SERVERS = ("product", *CLUSTER_NODES)
PRODUCT_WORKLOADS = ("broadcast", "idle")
POSTGRES_ADMIN_DSN = os.environ.get("BENCH_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Handshakes in flight against a cluster: a node's Redis client (redis-py 8's default pool, 100
# connections, which raises instead of waiting when they are all in use) fails connects when 100
# handshakes, each making several Redis calls, are in flight against one node (docs/performance.md).
CLUSTER_CONNECT_CONCURRENCY = 50
ALL_WORKLOADS = ("broadcast", "ack", "idle")


@dataclass(frozen=True)
class Profile:
    reps: int
    broadcast_ns: tuple[int, ...]
    idle_ns: tuple[int, ...]
    ack_clients: int
    warmup_s: float
    duration_s: float
    latency_duration_s: float
    min_latency_broadcasts: int
    sustained_deliveries_per_s: int
    settle_s: float
    payload_bytes: int = 100
    loadgen_workers: int = 2
    connect_concurrency: int = 100
    # Deliveries kept outstanding at saturation, and how often each load generator worker says how
    # many it received. Until 2026-12-04 (session 11) 8000 and 20 ms: the publisher then saw every
    # delivery ~10 ms late on average, which at 400k deliveries/s is half the window, so the fast
    # servers were held to what the window let through, at 44-65 % CPU (docs/performance.md).
    window_broadcasts: int = 4
    window_deliveries: int = 32000
    report_interval_ms: float = 2.0
    drain_timeout_s: float = 30.0
    idle_warm_per_worker: int = 5
    case_timeout_s: float = 240.0
    quiet_wait_s: float = 30.0
    quiet_threshold_pct: float = 15.0


FULL = Profile(
    reps=3,
    broadcast_ns=(100, 1000, 5000),
    idle_ns=(1000, 5000, 10000),
    ack_clients=50,
    warmup_s=1.0,
    duration_s=4.0,
    latency_duration_s=5.0,
    min_latency_broadcasts=3,
    sustained_deliveries_per_s=2000,
    settle_s=1.0,
)

SMOKE = Profile(
    reps=1,
    broadcast_ns=(50,),
    idle_ns=(100,),
    ack_clients=10,
    warmup_s=0.2,
    duration_s=0.5,
    latency_duration_s=0.5,
    min_latency_broadcasts=3,
    sustained_deliveries_per_s=1000,
    settle_s=0.2,
    drain_timeout_s=10.0,
    case_timeout_s=40.0,
    quiet_wait_s=0.0,
)


@dataclass(frozen=True)
class Case:
    workload: str
    n: int

    @property
    def key(self) -> str:
        return f"{self.workload}-{self.n}"


# Marks taken only once the servers' CPU has gone quiet (the idle workload's teardown): the driver
# waits for a window of IDLE_WINDOW_S with under IDLE_CPU_FRACTION of a core used.
AFTER_SERVER_IDLE = {"idle_closed"}
IDLE_WINDOW_S = 0.3
IDLE_CPU_FRACTION = 0.03
IDLE_WAIT_MAX_S = 180.0


@dataclass
class Mark:
    name: str
    t: float
    server_cpu_s: float  # summed over the nodes of a cluster
    server_rss: int
    loadgen_cpu_s: float
    machine_busy_s: float
    redis_cpu_s: float = 0.0  # the Redis server's own, for the cluster kinds
    node_cpu_s: list[float] | None = None  # per node of a cluster, in start order (the first publishes)
    server_wait_s: float = 0.0  # runnable but not running (waiting for a core), summed like server_cpu_s


def run_queue_wait_s(pid: int) -> float:
    """How long the main thread of `pid` (the event loop's, in every server here) has been runnable
    but not running: waiting for a core, which the load generator's processes share with the server
    (`/proc/<pid>/task/<pid>/schedstat`, Linux; 0 elsewhere). A server at less than 100 % CPU is not
    necessarily idle: at N = 100 the product server waited for a core ~27 % of the time while the
    machine had a core idle ~24 % of it (docs/performance.md, session 16)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def wait_for_quiet(max_wait_s: float, threshold_pct: float) -> float:
    """Waits (bounded) until the other processes on the machine use < threshold % of one core.

    The machine is shared (test suites of other sessions run on the same 2 cores); returns the busy
    percentage last seen so the run can be flagged.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        before, t0 = machine_busy_s(), time.monotonic()
        time.sleep(1.0)
        busy = 100 * (machine_busy_s() - before) / (time.monotonic() - t0)
        if busy < threshold_pct or time.monotonic() >= deadline:
            return busy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_command(name: str, port: int, python: str) -> list[str]:
    if name == "node":
        return ["node", str(NODE_DIR / "server.js"), str(port)]
    return [python, str(BENCH / "servers" / f"{name}.py"), "--port", str(port)]


class Server:
    """One server process."""

    def __init__(
        self,
        name: str,
        python: str,
        log_path: Path,
        command: Callable[[int], list[str]] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            command(self.port) if command else server_command(name, self.port, python),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited ({self.proc.returncode}), see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} server not listening after {timeout_s}s, see {self.log_path}")

    def bench_auth(self) -> dict[str, Any] | None:
        """What bench/servers/product.py printed for the load generator (tokens, project)."""
        for line in self.log_path.read_text().splitlines():
            if line.startswith("BENCH_AUTH "):
                auth: dict[str, Any] = json.loads(line[len("BENCH_AUTH ") :])
                return auth
        return None

    def label(self) -> str:
        lines = [ln for ln in self.log_path.read_text().splitlines() if ln.strip()]
        shown = [ln for ln in lines if ("listening" in ln or "FALLBACK" in ln) and "BENCH_AUTH" not in ln]
        return " | ".join(shown) or self.name

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()

    def cpu_s(self) -> float:
        cpu = self.ps.cpu_times()
        return float(cpu.user + cpu.system)


class ClusterBacking:
    """A fresh PostgreSQL database and Redis key prefix for one cluster run; `close` removes both."""

    def __init__(self) -> None:
        import redis

        self.name = f"bench-{uuid.uuid4().hex[:10]}"
        self.database = self.name.replace("-", "_")
        self.database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}"
        self.redis = redis.Redis.from_url(REDIS_URL)
        self._admin(f'CREATE DATABASE "{self.database}"')

    @staticmethod
    def _admin(sql: str) -> None:
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def redis_cpu_s(self) -> float:
        # Redis's own counters: its process may belong to another user, and INFO is one round trip.
        cpu = self.redis.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def close(self) -> None:
        try:
            keys = list(self.redis.scan_iter(match=f"{self.name}:*", count=1000))
            for i in range(0, len(keys), 500):
                self.redis.delete(*keys[i : i + 500])
        finally:
            self.redis.close()
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class Deployment:
    """What one run measures: one server process, or the nodes of a cluster and what they share."""

    def __init__(self, name: str, python: str, logs: Path, tag: str) -> None:
        self.name = name
        self.servers: list[Server] = []
        self.backing: ClusterBacking | None = None
        nodes = CLUSTER_NODES.get(name)
        if nodes is None:
            self.servers.append(Server(name, python, logs / f"{tag}.server.log"))
            return
        self.backing = ClusterBacking()
        try:
            for i in range(nodes):
                # One at a time: the first creates the schema and the project the others read.
                server = Server(
                    name, python, logs / f"{tag}.node{i + 1}.server.log", self._node_command(python, i)
                )
                self.servers.append(server)
                server.wait_ready(60.0)
        except BaseException:
            self.stop()
            raise

    def _node_command(self, python: str, index: int) -> Callable[[int], list[str]]:
        assert self.backing is not None
        backing = self.backing

        def command(port: int) -> list[str]:
            cmd = [python, str(BENCH / "servers" / "product.py"), "--port", str(port)]
            cmd += ["--database-url", backing.database_url, "--redis-url", REDIS_URL]
            cmd += ["--cluster-name", backing.name]
            return cmd if index == 0 else [*cmd, "--no-init"]

        return command

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def product(self) -> bool:
        return self.name in PRODUCT_SERVERS

    def wait_ready(self) -> None:
        for server in self.servers:
            server.wait_ready()

    def bench_auth(self) -> dict[str, Any] | None:
        return self.servers[0].bench_auth()

    def label(self) -> str:
        labels = [s.label() for s in self.servers]
        return labels[0] if len(labels) == 1 else " + ".join(labels)

    def wait_until_idle(self) -> float:
        """Waits until the servers have used (almost) no CPU for IDLE_WINDOW_S; returns when that
        quiet window began, i.e. when they finished what they were doing."""
        deadline = time.monotonic() + IDLE_WAIT_MAX_S
        history: list[tuple[float, float]] = []
        while time.monotonic() < deadline:
            now = time.monotonic()
            history.append((now, sum(s.cpu_s() for s in self.servers)))
            window = [(t, cpu) for t, cpu in history if t >= now - IDLE_WINDOW_S]
            t0, cpu0 = window[0]
            if now - t0 >= IDLE_WINDOW_S * 0.9 and history[-1][1] - cpu0 < IDLE_WINDOW_S * IDLE_CPU_FRACTION:
                return t0
            time.sleep(0.02)
        raise RuntimeError(f"server still busy {IDLE_WAIT_MAX_S} s after the clients closed")

    def sample(self, name: str, loadgen: psutil.Process) -> Mark:
        each = [s.cpu_s() for s in self.servers]
        return Mark(
            name=name,
            t=time.monotonic(),
            server_cpu_s=sum(each),
            server_rss=sum(s.ps.memory_info().rss for s in self.servers),
            loadgen_cpu_s=tree_cpu_s(loadgen),
            machine_busy_s=machine_busy_s(),
            redis_cpu_s=self.backing.redis_cpu_s() if self.backing else 0.0,
            node_cpu_s=each if self.backing else None,
            server_wait_s=sum(run_queue_wait_s(s.proc.pid) for s in self.servers),
        )

    def stop(self) -> None:
        try:
            for server in self.servers:
                server.stop()
        finally:
            if self.backing is not None:
                self.backing.close()


def tree_cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_loadgen(
    server: Deployment,
    case: Case,
    profile: Profile,
    log_path: Path,
    on_mark: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Mark]]:
    config = {
        # several: the subscribers are spread over them, the publisher is on the first
        "ports": server.ports,
        "workload": case.workload,
        "n": case.n,
        **{k: v for k, v in asdict(profile).items() if not isinstance(v, tuple)},
    }
    if server.product:
        config["product"] = server.bench_auth()
    if server.backing is not None:
        config["connect_concurrency"] = min(profile.connect_concurrency, CLUSTER_CONNECT_CONCURRENCY)
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            ["node", str(NODE_DIR / "loadgen.js"), json.dumps(config)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        watchdog = threading.Timer(profile.case_timeout_s, proc.kill)
        watchdog.start()
        ps = psutil.Process(proc.pid)
        marks: dict[str, Mark] = {}
        result: dict[str, Any] | None = None
        try:
            assert proc.stdout is not None and proc.stdin is not None
            for line in proc.stdout:
                if line.startswith("MARK "):
                    name = line[5:].strip()
                    quiet_since = server.wait_until_idle() if name in AFTER_SERVER_IDLE else None
                    marks[name] = server.sample(name, ps)
                    if quiet_since is not None:
                        marks[name] = replace(marks[name], t=quiet_since)
                    if on_mark is not None:
                        on_mark(name)
                    proc.stdin.write("OK\n")
                    proc.stdin.flush()
                elif line.startswith("RESULT "):
                    result = json.loads(line[7:])
            proc.wait(timeout=10)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if result is None:
        raise RuntimeError(f"load generator failed (exit {proc.returncode}), see {log_path}")
    return result, marks


def other_cpu_pct(a: Mark, b: Mark) -> float:
    """CPU % (of one core) used between two marks by processes other than the server(s), the load
    generator and (cluster) Redis."""
    own = (b.server_cpu_s - a.server_cpu_s) + (b.loadgen_cpu_s - a.loadgen_cpu_s)
    own += b.redis_cpu_s - a.redis_cpu_s
    return max(0.0, 100 * ((b.machine_busy_s - a.machine_busy_s) - own) / (b.t - a.t))


def metrics(case: Case, result: dict[str, Any], marks: dict[str, Mark]) -> dict[str, float]:
    if case.workload == "broadcast":
        sat = result["saturation"]
        lat = result["latency"]
        # What the subscribers were owed after each phase's drain: more than 0 is lost deliveries,
        # less is a miscount (events counted that were not sent); either way the phase after it
        # began with deliveries still in flight, so its latencies are not the server's.
        owed = {phase: result[phase]["undelivered_after_drain"] for phase in ("saturation", "latency")}
        if any(owed.values()):
            raise RuntimeError(f"deliveries do not add up after the drain: {owed} owed")
        a, b = marks["sat_start"], marks["sat_end"]
        server_cpu = b.server_cpu_s - a.server_cpu_s
        wall = b.t - a.t
        cluster: dict[str, float] = {}
        if a.node_cpu_s is not None and b.node_cpu_s is not None:
            cluster["redis_cpu_pct"] = 100 * (b.redis_cpu_s - a.redis_cpu_s) / wall
            # the publisher's node first: it also runs the publish handler and the Redis append
            for i, (x, y) in enumerate(zip(a.node_cpu_s, b.node_cpu_s, strict=True)):
                cluster[f"node{i + 1}_cpu_pct"] = 100 * (y - x) / wall
        return {
            "deliveries_per_s": sat["deliveries_per_s"],
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "cpu_ms_per_1000": server_cpu * 1e6 / max(1, sat["deliveries"]),
            "server_cpu_pct": 100 * server_cpu / wall,
            "server_wait_pct": 100 * (b.server_wait_s - a.server_wait_s) / wall,
            "loadgen_cpu_pct": 100 * (b.loadgen_cpu_s - a.loadgen_cpu_s) / wall,
            "other_cpu_pct": other_cpu_pct(a, b),
            "connect_per_s": result["connect"]["per_s"],
            # The server's CPU per publication at the sustained rate (the latency phase, drain
            # included): every publication pays its whole path there, none shares a batch or a
            # write with others as at saturation. At the default rate it is few publications for
            # large N; `--sustained` raises the rate for an A/B of the per-publication cost.
            "paced_cpu_us_per_broadcast": (marks["lat_end"].server_cpu_s - marks["lat_start"].server_cpu_s)
            * 1e6
            / max(1, lat["broadcasts"]),
            **cluster,
        }
    if case.workload == "ack":
        ack = result["ack"]
        a, b = marks["ack_t0"], marks["ack_t1"]  # the seconds whose acks are counted
        server_cpu = b.server_cpu_s - a.server_cpu_s
        wall = b.t - a.t
        return {
            "acks_per_s": ack["acks_per_s"],
            "p50_ms": ack["p50_ms"],
            "p99_ms": ack["p99_ms"],
            "cpu_us_per_ack": server_cpu * 1e6 / max(1, ack["acks"]),
            "server_cpu_pct": 100 * server_cpu / wall,
            "server_wait_pct": 100 * (b.server_wait_s - a.server_wait_s) / wall,
            "loadgen_cpu_pct": 100 * (b.loadgen_cpu_s - a.loadgen_cpu_s) / wall,
            "other_cpu_pct": other_cpu_pct(a, b),
        }
    before, connected, after = marks["idle_before"], marks["idle_connected"], marks["idle_after"]
    closing, closed = marks["idle_closing"], marks["idle_closed"]
    setup_cpu = connected.server_cpu_s - before.server_cpu_s
    dropped = result["idle"]["closed"]
    return {
        "rss_per_conn_kb": (after.server_rss - before.server_rss) / case.n / 1024,
        "setup_per_s": result["idle"]["setup_per_s"],
        "setup_cpu_us": setup_cpu * 1e6 / case.n,
        "setup_cpu_pct": 100 * setup_cpu / max(1e-9, connected.t - before.t),
        "setup_wait_pct": 100
        * (connected.server_wait_s - before.server_wait_s)
        / max(1e-9, connected.t - before.t),
        "other_cpu_pct": other_cpu_pct(before, after),
        "teardown_per_s": dropped / max(1e-9, closed.t - closing.t),
        "teardown_cpu_us": (closed.server_cpu_s - closing.server_cpu_s) * 1e6 / dropped,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny N, 1 repetition, seconds in all (for CI)")
    p.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma list of {','.join(ALL_SERVERS)} (the cluster kinds need PostgreSQL and Redis)",
    )
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS), help="comma list of broadcast,ack,idle")
    p.add_argument("--reps", type=int, help="repetitions (default 3, smoke 1)")
    p.add_argument("--broadcast-n", help="comma list of room sizes (default 100,1000,5000)")
    p.add_argument("--idle-n", help="comma list of idle connection counts (default 1000,5000,10000)")
    p.add_argument("--duration", type=float, help="seconds of each measured phase (default 4)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each run wait up to this many s for other processes to go quiet (default 30, smoke 0)",
    )
    p.add_argument(
        "--sustained",
        type=int,
        help="deliveries/s of the broadcast latency phase (default 2000, the same for every server)",
    )
    p.add_argument("--window", type=int, help="broadcast saturation: deliveries kept outstanding at least")
    p.add_argument("--report-ms", type=float, help="how often each load generator worker reports its counts")
    p.add_argument("--out", default=str(BENCH / "results"), help="output directory")
    p.add_argument("--python", default=sys.executable, help="interpreter for the Python servers")
    return p.parse_args(argv)


def choose(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in chosen if v not in allowed]
    if bad or not chosen:
        raise SystemExit(f"unknown {what}: {bad or value!r}; choose from {','.join(allowed)}")
    return chosen


def ints(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split(",") if v.strip())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    if args.reps is not None:
        profile = replace(profile, reps=args.reps)
    if args.broadcast_n:
        profile = replace(profile, broadcast_ns=ints(args.broadcast_n))
    if args.idle_n:
        profile = replace(profile, idle_ns=ints(args.idle_n))
    if args.quiet_wait is not None:
        profile = replace(profile, quiet_wait_s=args.quiet_wait)
    if args.duration is not None:
        profile = replace(profile, duration_s=args.duration, latency_duration_s=args.duration)
    if args.sustained is not None:
        profile = replace(profile, sustained_deliveries_per_s=args.sustained)
    if args.window is not None:
        profile = replace(profile, window_deliveries=args.window)
    if args.report_ms is not None:
        profile = replace(profile, report_interval_ms=args.report_ms)
    servers = choose(args.servers, ALL_SERVERS, "servers")
    workloads = choose(args.workloads, ALL_WORKLOADS, "workloads")
    cases = [
        Case(w, n)
        for w in workloads
        for n in {
            "broadcast": profile.broadcast_ns,
            "ack": (profile.ack_clients,),
            "idle": profile.idle_ns,
        }[w]
    ]
    out = Path(args.out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    failures = 0
    print(
        f"bench: servers={','.join(servers)} cases={[c.key for c in cases]} reps={profile.reps}", flush=True
    )
    for rep in range(1, profile.reps + 1):
        for case in cases:
            for name in servers:
                if name in PRODUCT_SERVERS and case.workload not in PRODUCT_WORKLOADS:
                    continue
                tag = f"{case.key}-{name}-r{rep}"
                run: dict[str, Any] = {"server": name, "case": case.key, "rep": rep}
                if profile.quiet_wait_s > 0:
                    run["busy_before_pct"] = wait_for_quiet(profile.quiet_wait_s, profile.quiet_threshold_pct)
                t0 = time.monotonic()
                server: Deployment | None = None
                try:
                    server = Deployment(name, args.python, logs, tag)
                    server.wait_ready()
                    result, marks = run_loadgen(server, case, profile, logs / f"{tag}.loadgen.log")
                    run["metrics"] = metrics(case, result, marks)
                    run["result"] = result
                    run["marks"] = {k: asdict(v) for k, v in marks.items()}
                except Exception as exc:  # one failed case must not lose the others
                    failures += 1
                    run["error"] = str(exc)
                finally:
                    if server is not None:
                        server.stop()
                        labels.setdefault(name, server.label())
                runs.append(run)
                shown = run.get("error") or "  ".join(f"{k}={v:.4g}" for k, v in run["metrics"].items())
                print(
                    f"[{time.monotonic() - started:6.1f}s] {tag:<28} {time.monotonic() - t0:5.1f}s  {shown}",
                    flush=True,
                )

    doc = report.build(
        runs=runs,
        servers=servers,
        cases=[c.key for c in cases],
        labels=labels,
        profile=asdict(profile),
        command="bench/run " + " ".join(argv),
        elapsed_s=time.monotonic() - started,
        node_dir=NODE_DIR,
    )
    paths = report.write(doc, out)
    print()
    print(doc["markdown"])
    print(f"wrote {', '.join(str(p) for p in paths)}")
    if failures:
        print(f"bench: {failures} run(s) failed, logs in {logs}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
