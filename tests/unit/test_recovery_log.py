"""RecoveryLog's group commit (gateway/recovery.py): what is submitted while a batch is written goes
into the next batch, which is delivered as one, in offset order, once it is durable."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from agent_portal.clock import SystemClock
from agent_portal.gateway.recovery import GATHER_TURNS, RecoveryLog
from agent_portal.storage.store import LogEntry, Target

MONITORING = [Target("/monitoring", ("a",))]


class SlowLog:
    """The log half of the recovery store, in memory; each append waits for `release`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()  # set by the first append
        self.appended: list[LogEntry] = []
        self.batches: list[int] = []

    async def append_log(self, entries: list[LogEntry]) -> list[int]:
        self.entered.set()
        self.batches.append(len(entries))
        await self.release.wait()
        start = len(self.appended)
        self.appended += entries
        return list(range(start + 1, start + 1 + len(entries)))

    async def log_since(self, since: datetime) -> list[LogEntry]:
        return []

    async def end_sessions(self, at: datetime) -> None:
        return None


async def test_a_batch_written_meanwhile_is_delivered_in_one_call_in_offset_order() -> None:
    store = SlowLog()
    log = RecoveryLog(store, SystemClock(), 120)  # type: ignore[arg-type]
    await log.start()
    deliveries: list[list[tuple[int, int]]] = []

    async def deliver(entries: list[LogEntry]) -> None:
        deliveries.append([(e.offset, e.data["n"]) for e in entries])

    log.deliver = deliver
    first = log.submit(MONITORING, "test_output", {"n": 0})
    await store.entered.wait()  # the writer took the first one alone and waits for the store
    rest = [log.submit(MONITORING, "test_output", {"n": n}) for n in range(1, 5)]
    store.release.set()
    assert await asyncio.gather(first, *rest) == [1, 2, 3, 4, 5]
    assert deliveries == [[(1, 0)], [(2, 1), (3, 2), (4, 3), (5, 4)]]
    assert log.head == 5


async def test_a_failed_delivery_fails_every_publisher_of_its_batch_and_the_next_goes_on() -> None:
    store = SlowLog()
    store.release.set()
    log = RecoveryLog(store, SystemClock(), 120)  # type: ignore[arg-type]
    await log.start()
    calls = 0

    async def deliver(entries: list[LogEntry]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("fan-out failed")

    log.deliver = deliver
    batch = [log.submit(MONITORING, "test_output", {"n": n}) for n in range(3)]
    for future in batch:
        with pytest.raises(RuntimeError, match="fan-out failed"):
            await future
    assert await log.submit(MONITORING, "test_output", {"n": 3}) == 4


async def test_publications_of_the_next_loop_turns_join_the_batch() -> None:
    # The writer lets GATHER_TURNS turns pass before it takes a batch: publications handled in
    # those turns (the rest of a burst already read) are committed and delivered with it.
    store = SlowLog()
    store.release.set()
    log = RecoveryLog(store, SystemClock(), 120)  # type: ignore[arg-type]
    await log.start()

    async def deliver(entries: list[LogEntry]) -> None:
        return None

    log.deliver = deliver
    submitted: list[asyncio.Future[int]] = [log.submit(MONITORING, "test_output", {"n": 0})]
    for n in range(1, GATHER_TURNS):  # one more publication in each of the next turns
        await asyncio.sleep(0)
        submitted.append(log.submit(MONITORING, "test_output", {"n": n}))
    assert await asyncio.gather(*submitted) == list(range(1, GATHER_TURNS + 1))
    assert store.batches == [GATHER_TURNS]
