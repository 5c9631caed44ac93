"""Samples a Python server with py-spy while it broadcasts at saturation, and sums where the time goes.

    .venv/bin/python bench/profile.py --server stock --n 1000 --seconds 8

Writes the raw collapsed stacks (flamegraph input) and a summary to --out; py-spy is pip-installed into
the interpreter when missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from driver import BENCH, FULL, Case, Server, run_loadgen

# Substrings of a frame that place a sample in a bucket; the first bucket found from the leaf up wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
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
    p.add_argument("--server", default="stock", choices=["stock", "portal", "product"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", default=str(BENCH / "results" / "profile"))
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spy = py_spy(args.python)
    tag = f"{args.server}-broadcast-{args.n}"
    raw = out / f"{tag}.collapsed.txt"
    profile = replace(FULL, duration_s=args.seconds + 1.0, latency_duration_s=0.5, min_latency_broadcasts=1)
    server = Server(args.server, args.python, out / f"{tag}.server.log")
    recorder: list[subprocess.Popen[bytes]] = []

    def on_mark(name: str) -> None:
        if name == "sat_start":
            cmd = [spy, "record", "-p", str(server.proc.pid), "-d", str(args.seconds), "-r", "250"]
            cmd += ["-f", "raw", "-o", str(raw), "--nonblocking"]
            recorder.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        elif name == "sat_end" and recorder:
            recorder[0].wait(timeout=30)

    try:
        server.wait_ready()
        result, _ = run_loadgen(
            server, Case("broadcast", args.n), profile, out / f"{tag}.loadgen.log", on_mark
        )
    finally:
        server.stop()
    summary = summarize(raw, args.top)
    text = f"{tag}: {result['saturation']['deliveries_per_s']:.0f} deliveries/s while sampled\n{summary}\n"
    (out / f"{tag}.summary.txt").write_text(text)
    print(text)
    print(f"wrote {raw} and {out / f'{tag}.summary.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
