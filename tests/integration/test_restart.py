"""Restart safety (issue 3): stop the server mid-sprint and start it again on the same data; state,
backlog, approvals, chat and cycles are all there, approvals still expire on time, interrupted tasks
are marked and resumed. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent_portal.settings import SecurityLimits
from support import LiveServer, live_server, make_settings

FAST = SecurityLimits(events_per_second=1000, events_per_minute=60_000)


async def say(server: LiveServer, chat: Any, text: str) -> dict[str, Any]:
    before = len(chat.of("command_result"))
    await chat.call("send_message", {"content": text, "type": "command"})
    await chat.wait_for("command_result", lambda _r: len(chat.of("command_result")) > before)
    return dict(chat.of("command_result")[before])


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    return None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))


async def test_state_survives_a_restart(tmp_path: Path, database_url: str | None) -> None:
    # Slow demo agents, so a task is caught mid-flight when the server stops.
    settings = replace(
        make_settings(tmp_path),
        security=FAST,
        database_url=database_url,
        demo_step_delay=0.5,
        approval_timeout_seconds=4,
    )
    async with live_server(settings) as server:
        await server.add_project("demo")
        token = server.token("root", "admin")
        chat = await server.client("/chat/demo", token)
        project = await server.client("/project/demo", token)
        await say(server, chat, '/epic "Accounts"')
        decomposition = await project.wait_for("approval_request")
        await project.call("resolve_approval", {"request_id": decomposition["request_id"], "approved": False})
        await say(server, chat, '/backlog add_story "Login form"')
        await say(server, chat, '/backlog add_story "Logout button" --priority 2')
        assert (await say(server, chat, "/sprint plan"))["success"] is True
        await say(server, chat, "/sprint start")
        first = await project.wait_for(
            "approval_request", lambda r: r["request_id"] != decomposition["request_id"]
        )
        await project.call("resolve_approval", {"request_id": first["request_id"], "approved": True})
        await project.wait_for("task_update", lambda t: t["status"] == "in_progress")
        before = (await project.call("get_snapshot"))["data"]
        history = (await chat.call("get_history", {}))["data"]["messages"]
    # The server is gone (its lifespan ran to the end); a new one opens the same database.
    async with live_server(settings) as server:
        token = server.token("root", "admin")
        project = await server.client("/project/demo", token)
        chat = await server.client("/chat/demo", token)
        after = (await project.call("get_snapshot"))["data"]
        assert after["current_state"] == before["current_state"] == "SPRINT_ACTIVE"
        assert [s["id"] for s in after["backlog"]] == [s["id"] for s in before["backlog"]]
        assert after["sprint"]["id"] == before["sprint"]["id"]
        assert [c["cycle_id"] for c in after["active_tdd_cycles"]] == [
            c["cycle_id"] for c in before["active_tdd_cycles"]
        ]
        pending = {a["id"]: a["timeout_at"] for a in after["pending_approvals"]}
        assert pending == {a["id"]: a["timeout_at"] for a in before["pending_approvals"]}
        assert (await chat.call("get_history", {}))["data"]["messages"] == history
        interrupted = [t for t in after["active_tasks"] if t["context"].get("interrupted")]
        assert interrupted, "the task running at the stop is marked interrupted"
        # ...and resumed: it runs again to completion.
        task_id = interrupted[0]["id"]
        await project.wait_for(
            "task_update", lambda t: t["task_id"] == task_id and t["status"] == "completed", timeout=15
        )
        # Approvals created before the restart still expire at their original time.
        if pending:
            expired = await project.wait_for(
                "approval_resolved", lambda r: r["request_id"] in pending, timeout=10
            )
            assert expired["resolved_by"] == "system" and expired["comment"] == "expired"
            deadline = datetime.fromisoformat(pending[expired["request_id"]].replace("Z", "+00:00"))
            resolved_at = datetime.fromisoformat(expired["resolved_at"].replace("Z", "+00:00"))
            assert 0 <= (resolved_at - deadline).total_seconds() < 2
        await asyncio.sleep(0)


async def test_tdd_run_tests_runs_the_real_test_command(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_math.py").write_text(
        "def test_adds():\n    assert 1 + 1 == 2\n\n\ndef test_broken():\n    assert 2 * 2 == 5, 'arithmetic'\n"
    )
    async with live_server(replace(make_settings(tmp_path / "data"), security=FAST)) as server:
        await server.add_project("real", path=str(repo))
        token = server.token("root", "admin")
        chat = await server.client("/chat/real", token)
        monitor = await server.client("/monitoring", token)
        await say(server, chat, '/backlog add_story "Math"')
        story = (await say(server, chat, "/backlog view"))["result"]["items"][0]["id"]
        started = await say(server, chat, f"/tdd start {story}")
        assert started["success"] is True
        cycle = started["result"]["cycle_id"]
        ran = await say(server, chat, "/tdd run_tests")
        assert ran["success"] is True
        result_line = await monitor.wait_for(
            "test_output", lambda o: o["cycle_id"] == cycle and o["output_type"] == "test_result", timeout=60
        )
        lines = monitor.of("test_output")
        text = "".join(o["content"] for o in lines if o["output_type"] == "stdout")
        assert "1 failed, 1 passed" in text, text
        assert "test_broken" in "".join(o["content"] for o in lines)
        numbers = [o["sequence_number"] for o in lines]
        assert numbers == list(range(1, len(numbers) + 1))
        assert result_line["content"]
        missed = await monitor.call("get_test_output", {"cycle_id": cycle, "after_sequence": 1})
        assert [o["sequence_number"] for o in missed["data"]["lines"]] == numbers[1:]
        logs = await say(server, chat, f"/tdd logs {story}")
        assert logs["success"] is True
