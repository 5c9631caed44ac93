"""A whole project played from the chat over a live server with real clients (issue 3): every event
of the spec arrives with a valid schema, in a sensible order, to the right sockets."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent_portal.protocol.registry import MONITORING_PROJECT_EVENTS, PROJECT_EVENTS, SERVER_EVENTS
from agent_portal.settings import SecurityLimits
from support import LiveServer, Recorder, live_server, make_settings

FAST = SecurityLimits(events_per_second=1000, events_per_minute=60_000)


@pytest.fixture
async def fast_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    settings = replace(make_settings(tmp_path), demo_step_delay=0.01, security=FAST)
    async with live_server(settings) as live:
        await live.add_project("demo")
        await live.add_project("other")
        yield live


async def command(chat: Recorder, text: str) -> dict[str, Any]:
    before = len(chat.of("command_result"))
    reply = await chat.call("send_message", {"content": text, "type": "command"})
    assert reply["ok"] is True, reply
    await chat.wait_for("command_result", lambda _r: len(chat.of("command_result")) > before)
    return dict(chat.of("command_result")[before])


async def approve_until(project: Recorder, done: Any, timeout: float = 60) -> None:
    """Plays the lead: approves every approval request as it arrives, until `done()`."""
    approved: set[str] = set()

    async def loop() -> None:
        while not done():
            resolved = {r["request_id"] for r in project.of("approval_resolved")}
            for request in project.of("approval_request"):
                if request["request_id"] not in approved | resolved:
                    approved.add(request["request_id"])
                    reply = await project.call(
                        "resolve_approval", {"request_id": request["request_id"], "approved": True}
                    )
                    assert reply["ok"] is True and reply["data"]["success"] is True, reply
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)


def states(recorder: Recorder) -> list[str]:
    return [e["new_state"] for e in recorder.of("state_change")]


async def test_a_whole_project_from_the_chat(fast_server: LiveServer) -> None:
    server = fast_server
    alice = server.token("alice", "member", ["demo"])
    chat = await server.client("/chat/demo", alice)
    project = await server.client("/project/demo", server.token("lead", "member", ["demo"]))
    portal = await server.client("/portal", server.token("pm", "viewer", ["demo", "other"]))
    await portal.call("join_project", {"project_name": "demo"})
    monitor = await server.client("/monitoring", server.token("vic", "viewer", ["demo"]))
    stranger = await server.client("/monitoring", server.token("sam", "viewer", ["other"]))
    other_project = await server.client("/project/other", server.token("oz", "member", ["other"]))

    epic = await command(chat, '/epic "Build a login system with password reset"')
    assert epic["success"] is True and epic["result"]["message"].startswith("Epic epic-")
    response = await chat.wait_for("message_received", lambda m: m["type"] == "response")
    assert response["embed_data"]["title"] == "/epic" and response["user_id"] == "orchestrator"

    # The design agent's decomposition waits for approval (blocking mode), then proposes stories.
    await approve_until(project, lambda: len(project.of("backlog_updated")) >= 2)
    added = await command(chat, '/backlog add_story "Remember me checkbox" --priority 1')
    assert added["success"] is True
    story_id = added["result"]["story_id"]
    view = await command(chat, "/backlog view")
    items = view["result"]["items"]
    assert [i["priority"] for i in items] == sorted(i["priority"] for i in items), "sorted by priority"
    assert story_id in [i["id"] for i in items if i["priority"] == 1]
    assert (await command(chat, "/approve"))["success"] is True
    planned = await command(chat, "/sprint plan")
    assert planned["success"] is True and story_id in planned["result"]["stories"]
    refused = await command(chat, "/sprint plan")
    assert (
        refused["success"] is False
        and refused["error"] == "Command /sprint plan not allowed in state SPRINT_PLANNED"
    )
    started = await command(chat, "/sprint start")
    assert started["success"] is True

    await approve_until(project, lambda: "SPRINT_REVIEW" in states(project), timeout=90)
    status = await command(chat, "/sprint status")
    assert status["success"] is False, "the table allows /sprint status only while a sprint runs"
    assert status["result"]["hint"] == "Try when in states: SPRINT_ACTIVE, SPRINT_PAUSED, BLOCKED"
    assert status["result"]["current_state"] == "SPRINT_REVIEW"
    done = await command(chat, '/feedback "Great sprint"')
    assert done["result"]["message"] == "Sprint feedback recorded: Great sprint"
    await project.wait_for("state_change", lambda e: e["new_state"] == "IDLE")

    # Every event that arrived anywhere is valid by its schema.
    for recorder in (chat, project, portal, monitor):
        for name, data in recorder.events:
            SERVER_EVENTS[name].model_validate(data)

    # The workflow went the documented way, and was announced with who and why.
    assert states(project) == ["BACKLOG_READY", "SPRINT_PLANNED", "SPRINT_ACTIVE", "SPRINT_REVIEW", "IDLE"]
    changes = project.of("state_change")
    assert changes[0]["command"] == "/epic" and changes[0]["triggered_by"] == "alice"
    assert changes[3]["triggered_by"] == "system" and changes[3].get("reason"), (
        "the automatic review says why"
    )
    assert states(portal) == states(project), "the portal's project room sees the workflow too"

    # Tasks: progress is monotone, each finishes completed.
    progress: dict[str, list[int]] = defaultdict(list)
    final: dict[str, str] = {}
    for update in project.of("task_update"):
        progress[update["task_id"]].append(update["progress"])
        final[update["task_id"]] = update["status"]
    assert all(p == sorted(p) for p in progress.values())
    assert set(final.values()) == {"completed"}

    # TDD: each cycle walks design → test_red → code_green → refactor → commit; output is gapless.
    cycles = {e["cycle_id"] for e in monitor.of("tdd_cycle_started")}
    assert len(cycles) == len(planned["result"]["stories"])
    for cycle in cycles:
        walk = [e["new_state"] for e in monitor.of("tdd_state_change") if e["cycle_id"] == cycle]
        assert walk == ["test_red", "code_green", "refactor", "commit"]
        numbers = [e["sequence_number"] for e in monitor.of("test_output") if e["cycle_id"] == cycle]
        assert numbers == list(range(1, len(numbers) + 1)) and numbers
    red = [e for e in monitor.of("tdd_state_change") if e["new_state"] == "code_green"]
    assert all(e.get("test_results") for e in red)
    assert {e["status"] for e in monitor.of("agent_activity")} >= {"started", "completed"}
    assert project.of("sprint_progress")[-1]["completed_stories"] == len(planned["result"]["stories"])
    assert {e["change_type"] for e in project.of("backlog_updated")} >= {"added", "updated"}

    # The right sockets: the portal gets workflow events only; strangers get nothing of demo.
    assert set(portal.names()) - {"joined_project"} <= set(PROJECT_EVENTS)
    assert set(monitor.names()) <= set(MONITORING_PROJECT_EVENTS) | {"system_metrics"}
    assert not [n for n in stranger.names() if n != "system_metrics"]
    assert not other_project.events
    # The chat saw each command's message, result and response, in that order.
    kinds = [(n, d.get("type")) for n, d in chat.events if n in ("message_received", "command_result")]
    assert kinds[:3] == [
        ("message_received", "command"),
        ("command_result", None),
        ("message_received", "response"),
    ]


async def test_viewer_cannot_approve_and_members_can_reject(fast_server: LiveServer) -> None:
    server = fast_server
    chat = await server.client("/chat/demo", server.token("alice"))
    viewer = await server.client("/project/demo", server.token("vera", "viewer"))
    lead = await server.client("/project/demo", server.token("lead"))
    await command(chat, '/epic "Reporting"')
    request = await lead.wait_for("approval_request")
    refused = await viewer.call("resolve_approval", {"request_id": request["request_id"], "approved": True})
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    rejected = await lead.call(
        "resolve_approval", {"request_id": request["request_id"], "approved": False, "comment": "later"}
    )
    assert rejected["data"]["success"] is True
    resolved = await viewer.wait_for("approval_resolved")
    assert resolved == {
        "project_name": "demo",
        "request_id": request["request_id"],
        "approved": False,
        "resolved_by": "lead",
        "resolved_at": resolved["resolved_at"],
        "comment": "later",
    }
    again = await lead.call("resolve_approval", {"request_id": request["request_id"], "approved": True})
    assert again["data"]["success"] is False
    unknown = await lead.call("resolve_approval", {"request_id": "nope", "approved": True})
    assert unknown["data"] == {"success": False, "error": "Approval request not found: nope"}


async def test_unknown_commands_and_parse_errors_answer_with_hints(fast_server: LiveServer) -> None:
    chat = await fast_server.client("/chat/demo", fast_server.token("alice"))
    unknown = await command(chat, "/dance")
    assert unknown["success"] is False and unknown["error"] == "Unknown command: /dance"
    assert unknown["result"]["hint"] == "Use /state to see available commands"
    quote = await command(chat, '/epic "unclosed')
    assert quote["success"] is False
    project = await fast_server.client("/project/demo", fast_server.token("alice"))
    snapshot = (await project.call("get_snapshot"))["data"]
    assert snapshot["agents"]["CodeAgent"] == "demo", "pages can label demo agents as such"
    state = await command(chat, "/state")
    assert state["result"]["state_info"]["allowed_commands"] == [
        "/backlog add_story",
        "/backlog prioritize",
        "/backlog remove",
        "/backlog view",
        "/epic",
        "/state",
    ]


async def test_approvals_expire_on_time(tmp_path: Path) -> None:
    settings = replace(make_settings(tmp_path), approval_timeout_seconds=1, security=FAST)
    async with live_server(settings) as server:
        await server.add_project("demo")
        chat = await server.client("/chat/demo", server.token("alice"))
        project = await server.client("/project/demo", server.token("lead"))
        await command(chat, '/epic "Search"')
        request = await project.wait_for("approval_request")
        resolved = await project.wait_for("approval_resolved", timeout=5)
        assert resolved["request_id"] == request["request_id"]
        assert (resolved["approved"], resolved["resolved_by"], resolved["comment"]) == (
            False,
            "system",
            "expired",
        )
