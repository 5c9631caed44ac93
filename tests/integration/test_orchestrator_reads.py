"""An orchestrator's burst of publications reads its project's record, and writes its last activity,
once per expiry, not once per publication in flight (gateway/namespaces/orchestrator.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_portal.gateway.namespaces import orchestrator
from agent_portal.protocol.registry import NamespaceKind
from agent_portal.storage.store import ProjectRecord
from support import LiveServer


def output(n: int) -> dict[str, Any]:
    return {
        "event": "test_output",
        "data": {
            "project_name": "ext",
            "cycle_id": "c1",
            "output_type": "stdout",
            "content": f"line {n}",
            "timestamp": "2026-12-04T12:00:00.000Z",
            "sequence_number": n + 1,
        },
    }


async def test_a_burst_reads_the_project_once_per_expiry(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await server.app.services.store.add_project(ProjectRecord("ext", None, True, an_hour_ago, an_hour_ago))
    orch = await server.client("/orchestrator", server.token("bot", "orchestrator", ["ext"]))
    watcher = await server.client("/monitoring", server.token("gina", "viewer", ["ext"]))
    store = server.app.services.store
    calls: list[str] = []
    for name in ("get_project", "touch_project"):
        original = getattr(store, name)

        async def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return await _original(*args)

        monkeypatch.setattr(store, name, counted)

    first = await orch.call("publish", output(0))
    assert first == {"ok": True, "data": {"event": "test_output"}}
    await asyncio.sleep(0.2)  # the activity is written after the publication
    assert calls == ["get_project", "touch_project"]  # cold: read, and an hour-old activity written
    calls.clear()

    # The cached record expired, as RECORD_TTL seconds later, and its activity an hour old again.
    namespace = server.app.gateway.modules[NamespaceKind.ORCHESTRATOR]
    assert isinstance(namespace, orchestrator.OrchestratorNamespace)
    expired = time.monotonic() - orchestrator.RECORD_TTL - 1
    namespace._records["ext"] = (ProjectRecord("ext", None, True, an_hour_ago, an_hour_ago), expired)

    # eight: under the default 10 events per second
    replies = await asyncio.gather(*(orch.call("publish", output(n)) for n in range(1, 9)))
    assert all(reply["ok"] for reply in replies)
    await asyncio.sleep(0.2)  # the refresh runs after the publication that started it
    assert calls.count("get_project") == 1, calls
    assert calls.count("touch_project") == 1, calls
    stored = await store.get_project("ext")
    assert stored is not None and stored.last_activity > an_hour_ago
    await watcher.wait_for("test_output", lambda data: data["sequence_number"] == 9)
    assert sorted(d["sequence_number"] for d in watcher.of("test_output")) == list(range(1, 10))


async def external_project_an_hour_idle(server: LiveServer) -> tuple[datetime, Any, Any]:
    """Project `ext`, last active an hour ago; its orchestrator and a /monitoring watcher."""
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await server.app.services.store.add_project(ProjectRecord("ext", None, True, an_hour_ago, an_hour_ago))
    orch = await server.client("/orchestrator", server.token("bot", "orchestrator", ["ext"]))
    watcher = await server.client("/monitoring", server.token("gina", "viewer", ["ext"]))
    return an_hour_ago, orch, watcher


async def eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `check` comes true within a second (the activity write runs after the reply)."""
    for _ in range(50):
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_publication_does_not_wait_for_its_activity_write(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, orch, watcher = await external_project_an_hour_idle(server)
    store = server.app.services.store
    release = asyncio.Event()
    writes: list[datetime] = []
    original = store.touch_project

    async def slow_disk(project: str, at: datetime) -> None:
        await release.wait()
        writes.append(at)
        await original(project, at)

    monkeypatch.setattr(store, "touch_project", slow_disk)

    # Delivered and acked while the write is held back; the next ones do not start another.
    assert (await orch.call("publish", output(0)))["ok"]
    await watcher.wait_for("test_output", lambda data: data["sequence_number"] == 1)
    assert (await orch.call("publish", output(1)))["ok"]
    await watcher.wait_for("test_output", lambda data: data["sequence_number"] == 2)
    assert writes == []

    release.set()

    async def written() -> bool:
        return bool(writes)

    assert await eventually(written)
    assert len(writes) == 1
    stored = await store.get_project("ext")
    assert stored is not None and stored.last_activity == writes[0]


async def test_a_failed_activity_write_does_not_fail_the_publication(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    an_hour_ago, orch, watcher = await external_project_an_hour_idle(server)
    store = server.app.services.store

    async def broken(project: str, at: datetime) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "touch_project", broken)
    assert await orch.call("publish", output(0)) == {"ok": True, "data": {"event": "test_output"}}
    await watcher.wait_for("test_output", lambda data: data["sequence_number"] == 1)

    async def logged() -> bool:
        return "writing the last activity of project ext failed" in caplog.text

    assert await eventually(logged)
    # the next publication tries again (the failed one no longer counts as in flight)
    monkeypatch.undo()
    assert (await orch.call("publish", output(1)))["ok"]

    async def touched() -> bool:
        stored = await store.get_project("ext")
        return stored is not None and stored.last_activity > an_hour_ago

    assert await eventually(touched)
