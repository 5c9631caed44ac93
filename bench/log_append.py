"""The recovery log's append on SQLite: the store's path against SQLAlchemy Core's insert, in one run.

    .venv/bin/python bench/log_append.py                 # batches of 1, 4, 16, 64; 3 alternating rounds
    .venv/bin/python bench/log_append.py --batches 1,64 --entries 4000 --rounds 5

Every broadcast waits for the commit of its log batch (gateway/recovery.py), so what an append costs
the server counts. Both sides run the same statement shape (one multi-row INSERT ... RETURNING with
the insert sentinel) in one transaction on the recovery engine's thread, through `RecoveryEngine.run`
as the server does, on the same database file:

- `store`: `SqlStore.append_log` (the rows written through the DBAPI cursor, storage/sql.py);
- `core`: the same rows through SQLAlchemy Core's `insert().returning(..., sort_by_parameter_order=True)`
  (`_append_core`: the store's path on PostgreSQL, and on SQLite until session 12, docs/performance.md).

Reported: process CPU (both threads) and wall time per entry, medians over the rounds, and the ratio
store / core. An entry is a `test_output` of the product bench (100-byte content).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from agent_portal.jsontext import compact_dumps
from agent_portal.storage.sql import SqlStore, _append_core
from agent_portal.storage.store import LogEntry, Target

DATA = {
    "project_name": "bench",
    "cycle_id": "c1",
    "output_type": "stdout",
    "content": "x" * 100,
    "timestamp": "2026-12-07T12:00:00.000Z",
    "sequence_number": 1796648412000123,
}
ENCODED = compact_dumps(["test_output", DATA])
TARGETS = (
    Target("/project/bench", ("p:bench", "p:bench:test_output")),
    Target("/monitoring", ("p:bench", "p:bench:test_output", "p:*", "p:*:test_output")),
)


def entries(count: int) -> list[LogEntry]:
    now = datetime.now(UTC)
    # with the `[event, data]` text the publisher encodes once, as the server's entries have it
    return [LogEntry(0, TARGETS, "test_output", DATA, now, ENCODED) for _ in range(count)]


def core_append(store: SqlStore) -> Callable[[list[LogEntry]], Awaitable[list[int]]]:
    async def append(batch: list[LogEntry]) -> list[int]:
        return await store._recovery.run(lambda conn: _append_core(conn, batch))

    return append


async def measure(
    append: Callable[[list[LogEntry]], Awaitable[list[int]]], batch: int, total: int
) -> tuple[float, float]:
    """CPU and wall microseconds per entry over `total` entries in batches of `batch`."""
    batches = max(1, total // batch)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        await append(entries(batch))
    count = batches * batch
    return (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


async def main(sizes: list[int], total: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        store = await SqlStore.open(f"sqlite+aiosqlite:///{Path(tmp) / 'log.db'}")
        try:
            sides = {"store": store.append_log, "core": core_append(store)}
            for side in sides.values():  # the engine's connection, the statement caches
                await side(entries(64))
            print(
                "| batch | store CPU us/entry | core CPU us/entry | store/core CPU | store wall | core wall |"
            )
            print("|---:|---:|---:|---:|---:|---:|")
            for size in sizes:
                cpu: dict[str, list[float]] = {name: [] for name in sides}
                wall: dict[str, list[float]] = {name: [] for name in sides}
                for _ in range(rounds):  # A B A B
                    for name, side in sides.items():
                        c, w = await measure(side, size, total)
                        cpu[name].append(c)
                        wall[name].append(w)
                s, c = statistics.median(cpu["store"]), statistics.median(cpu["core"])
                print(
                    f"| {size} | {s:.1f} | {c:.1f} | {s / c:.2f}x | "
                    f"{statistics.median(wall['store']):.1f} | {statistics.median(wall['core']):.1f} |"
                )
                await store.prune_log(datetime.now(UTC))
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", default="1,4,16,64", help="entries per batch, comma-separated")
    parser.add_argument("--entries", type=int, default=2000, help="entries per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main([int(b) for b in args.batches.split(",")], args.entries, args.rounds))
