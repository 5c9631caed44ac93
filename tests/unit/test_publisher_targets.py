"""Publisher: the log entries of one project stream share one targets tuple."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import socketio

from agent_portal.clock import SystemClock
from agent_portal.gateway.fanout import FanoutManager
from agent_portal.gateway.publisher import Publisher
from agent_portal.gateway.recovery import RecoveryLog
from agent_portal.protocol.server_events import TestOutputEvent
from agent_portal.storage.store import LogEntry


class MemoryLog:
    def __init__(self) -> None:
        self.appended: list[LogEntry] = []

    async def append_log(self, entries: list[LogEntry]) -> list[int]:
        start = len(self.appended)
        self.appended += entries
        return list(range(start + 1, start + 1 + len(entries)))


def output(n: int) -> TestOutputEvent:
    return TestOutputEvent(
        project_name="demo",
        cycle_id="c1",
        output_type="stdout",
        content=f"line {n}",
        timestamp=datetime.now(UTC),
        sequence_number=n + 1,
    )


async def test_the_entries_of_a_stream_share_one_targets_tuple() -> None:
    # The log keeps each entry for the recovery window: a tuple of its own was one more object per
    # publication for every young-generation GC pass to walk (docs/performance.md, session 14).
    store = MemoryLog()
    log = RecoveryLog(store, SystemClock(), 120)  # type: ignore[arg-type]
    publisher = Publisher(socketio.AsyncServer(async_mode="asgi", client_manager=FanoutManager()), log)
    for n in range(3):
        await publisher.publish("test_output", output(n))
    first, *rest = store.appended
    assert [e.data["sequence_number"] for e in store.appended] == [1, 2, 3]
    assert {t.namespace for t in first.targets} == {"/project/demo", "/monitoring"}
    assert all(e.targets is first.targets for e in rest)
    gc.collect()
    assert not gc.is_tracked(first.data)  # the payload is JSON data: nothing for the GC to walk
