"""Side-by-side A/B of the product's connection set-up: two product servers, one built from another
checkout (the base), one from this tree, under one load generator that spreads its clients over both.

    git worktree add /tmp/base HEAD~1
    .venv/bin/python bench/pair.py --base /tmp/base                 # 4 runs of 5000 connections
    git worktree remove /tmp/base

Sequential A/B runs of set-up CPU spread by +-25 % on the 2-core machine of docs/performance.md
(session 14): the machine's speed drifts between runs. Here both servers take the same load at the
same time, so the drift is common to both, and the ratio of their CPU per connection set up agreed
within +-5-10 % with the same build on both sides. Each run starts two fresh servers (the base's
`bench/servers/product.py` with the base's `src` on PYTHONPATH) and swaps which one is first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import psutil
from driver import FULL, ROOT, Case, Deployment, Mark, Server, run_loadgen


class SideBySide(Deployment):
    """The two servers as one deployment for `run_loadgen`, sampled each on its own (`node_cpu_s`)."""

    def __init__(self, servers: list[Server]) -> None:  # not Deployment's: the servers are given
        self.name = "product"
        self.servers = servers
        self.backing = None

    def sample(self, name: str, loadgen: psutil.Process) -> Mark:
        return replace(super().sample(name, loadgen), node_cpu_s=[s.cpu_s() for s in self.servers])


def start(label: str, root: Path, python: str, logs: Path) -> Server:
    script = root / "bench" / "servers" / "product.py"
    env_path = f"PYTHONPATH={root / 'src'}"

    def command(port: int) -> list[str]:
        return ["env", env_path, python, str(script), "--port", str(port)]

    return Server(label, python, logs / f"{label}.server.log", command)


def one_run(base: Path, python: str, n: int, swap: bool, logs: Path) -> dict[str, float]:
    sides = [("base", base), ("new", ROOT)]
    if swap:
        sides.reverse()
    servers: list[Server] = []
    try:
        for label, root in sides:
            servers.append(start(label, root, python, logs))
        for server in servers:
            server.wait_ready()
        pair = SideBySide(servers)
        _, marks = run_loadgen(pair, Case("idle", n), FULL, logs / "loadgen.log")
    finally:
        for server in servers:
            server.stop()
    before, after = marks["idle_before"].node_cpu_s, marks["idle_connected"].node_cpu_s
    assert before is not None and after is not None
    # The load generator gives each server every other pair of clients: n / 2 each.
    return {s.name: 1e6 * (b - a) / (n / 2) for s, a, b in zip(servers, before, after, strict=True)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--base", type=Path, required=True, help="a checkout of the base revision")
    p.add_argument("--n", type=int, default=5000, help="connections per run (half to each server)")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--python", default=sys.executable, help="interpreter for both servers")
    args = p.parse_args(argv)
    if not (args.base / "bench" / "servers" / "product.py").is_file():
        p.error(f"{args.base} is not a checkout of this repository")
    logs = Path(tempfile.mkdtemp(prefix="bench-pair-"))
    ratios = []
    for run in range(args.runs):
        cpu = one_run(args.base.resolve(), args.python, args.n, run % 2 == 1, logs)
        ratios.append(cpu["new"] / cpu["base"])
        print(
            f"run {run + 1}: CPU per connection set up, base {cpu['base']:.0f} us, new {cpu['new']:.0f} us,"
            f" new/base {ratios[-1]:.3f}",
            flush=True,
        )
    print(f"new/base median {statistics.median(ratios):.3f} over {len(ratios)} runs (logs: {logs})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
