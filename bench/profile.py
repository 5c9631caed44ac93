"""Samples a Python server with py-spy during a workload's measured phase, and sums where the time goes.

    .venv/bin/python bench/profile.py --server stock --n 1000 --seconds 8
    .venv/bin/python bench/profile.py --server product-cluster2 --n 5000 --seconds 8
    .venv/bin/python bench/profile.py --server portal --workload ack --n 50
    .venv/bin/python bench/profile.py --server portal --workload idle --n 10000   # connection set-up
    .venv/bin/python bench/profile.py --server product --workload disconnect --n 10000 --seconds 4

Writes the raw collapsed stacks (flamegraph input) and a summary to --out; py-spy is pip-installed into
the interpreter when missing. A cluster kind is sampled node by node (one py-spy per process, node 1
is the publisher's), with each node's CPU %, Redis's and the load generator's over the same seconds.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from driver import BENCH, CLUSTER_NODES, FULL, Case, Deployment, Mark, run_loadgen

# The marks that open and close each workload's measured phase (bench/node/loadgen.js).
PHASES = {
    "broadcast": ("sat_start", "sat_end"),
    "ack": ("ack_start", "ack_end"),
    "idle": ("idle_before", "idle_connected"),
    # the idle workload's teardown: every client drops at once
    "disconnect": ("idle_closing", "idle_closed"),
}
# What the load generator runs for each profiled workload.
LOADGEN_WORKLOAD = {"disconnect": "idle"}

# Substrings of a frame that place a sample in a bucket; the first bucket found from the leaf up wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    # the cluster path first: its frames sit above the generic ones they call
    ("cluster log: decode of each Redis message", ("decode_entry",)),
    ("cluster log: append (Lua script call)", ("append_log",)),
    ("Redis client (redis-py: parse, socket)", ("redis/",)),
    ("asyncio task creation / scheduling / wait", ("create_task", "tasks.py", "base_events.py", "events.py")),
    ("WebSocket framing and transport writes", ("websockets", "uvicorn/protocols", "transports", "selector")),
    ("engineio socket send queue / writer loop", ("engineio/async_socket", "engineio/async_drivers")),
    ("packet encoding (json)", ("packet.py", "json")),
    ("socketio manager / server", ("socketio/",)),
]


def py_spy(python: str) -> str:
    found = shutil.which("py-spy") or str(Path(python).parent / "py-spy")
    if not Path(found).exists():
        subprocess.run([python, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return found


def summarize(raw: Path, top: int) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        for frame in reversed(frames):
            bucket = next((b for b, keys in BUCKETS if any(k in frame for k in keys)), None)
            if bucket:
                buckets[bucket] += count
                break
        else:
            buckets["other"] += count
    out = [f"{total} samples", "", "by bucket (leaf-most matching frame):"]
    out += [f"  {100 * c / total:5.1f}%  {b}" for b, c in buckets.most_common()]
    out += ["", f"top {top} self:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_time.most_common(top)]
    out += ["", f"top {top} inclusive:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="stock", choices=["stock", "portal", "product", *CLUSTER_NODES])
    p.add_argument("--workload", default="broadcast", choices=sorted(PHASES))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", default=str(BENCH / "results" / "profile"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument(
        "--gil",
        action="store_true",
        help="only samples of the thread holding the GIL: Python's CPU, without threads that wait",
    )
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spy = py_spy(args.python)
    tag = f"{args.server}-{args.workload}-{args.n}"
    start_mark, end_mark = PHASES[args.workload]
    profile = replace(FULL, duration_s=args.seconds + 1.0, latency_duration_s=0.5, min_latency_broadcasts=1)
    server = Deployment(args.server, args.python, out, tag)
    many = len(server.servers) > 1
    raws = [out / f"{tag}{f'.node{i + 1}' if many else ''}.collapsed.txt" for i in range(len(server.servers))]
    recorders: list[subprocess.Popen[bytes]] = []

    def on_mark(name: str) -> None:
        if name == start_mark:
            for process, raw in zip(server.servers, raws, strict=True):
                cmd = [spy, "record", "-p", str(process.proc.pid), "-d", str(args.seconds), "-r", "250"]
                cmd += ["-f", "raw", "-o", str(raw), "--nonblocking"] + (["--gil"] if args.gil else [])
                recorders.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        elif name == end_mark:
            for recorder in recorders:
                recorder.wait(timeout=30)

    try:
        server.wait_ready()
        result, marks = run_loadgen(
            server,
            Case(LOADGEN_WORKLOAD.get(args.workload, args.workload), args.n),
            profile,
            out / f"{tag}.loadgen.log",
            on_mark,
        )
    finally:
        server.stop()
    text = f"{tag}: {headline(args.workload, result)} while sampled\n"
    text += cpu_shares(marks[start_mark], marks[end_mark]) + "\n"
    for i, raw in enumerate(raws):
        text += f"\n--- node {i + 1}{' (the publisher is on it)' if i == 0 else ''}\n" if many else "\n"
        text += summarize(raw, args.top) + "\n"
    (out / f"{tag}.summary.txt").write_text(text)
    print(text)
    print(f"wrote {', '.join(str(r) for r in raws)} and {out / f'{tag}.summary.txt'}")
    return 0


def headline(workload: str, result: dict[str, Any]) -> str:
    if workload == "broadcast":
        return f"{result['saturation']['deliveries_per_s']:.0f} deliveries/s"
    if workload == "ack":
        return f"{result['ack']['acks_per_s']:.0f} acks/s"
    if workload == "disconnect":
        return f"{result['idle']['closed']} clients dropped"
    return f"{result['idle']['setup_per_s']:.0f} connections set up/s"


def cpu_shares(a: Mark, b: Mark) -> str:
    """Where the machine's CPU went over the sampled phase, in % of one core (py-spy's own included
    in "rest": it runs beside the servers)."""
    wall = b.t - a.t
    pct = {"servers": 100 * (b.server_cpu_s - a.server_cpu_s) / wall}
    if a.node_cpu_s is not None and b.node_cpu_s is not None:
        for i, (x, y) in enumerate(zip(a.node_cpu_s, b.node_cpu_s, strict=True)):
            pct[f"  node {i + 1}"] = 100 * (y - x) / wall
        pct["redis"] = 100 * (b.redis_cpu_s - a.redis_cpu_s) / wall
    pct["load generator"] = 100 * (b.loadgen_cpu_s - a.loadgen_cpu_s) / wall
    busy = 100 * (b.machine_busy_s - a.machine_busy_s) / wall
    counted = sum(v for k, v in pct.items() if not k.startswith(" "))
    pct["rest (py-spy, other processes)"] = busy - counted
    lines = [f"CPU % of one core over {wall:.1f} s (machine busy {busy:.0f} %):"]
    return "\n".join([*lines, *(f"  {v:6.1f}  {k}" for k, v in pct.items())])


if __name__ == "__main__":
    sys.exit(main())
