"""An orchestrator publishes each event type once; each reaches exactly the sockets allowed to see it
(decisions §4, §6)."""

from __future__ import annotations

from typing import Any

import pytest

from agent_portal.protocol.registry import PUBLISHABLE_EVENTS
from samples import sample
from support import LiveServer, Recorder

PROJECT_EVENTS = [
    "state_change",
    "task_update",
    "approval_request",
    "approval_resolved",
    "sprint_progress",
    "backlog_updated",
]
MONITORING_EVENTS = ["agent_activity", "tdd_cycle_started", "tdd_state_change", "test_output"]


@pytest.fixture
async def world(server: LiveServer) -> dict[str, Recorder]:
    await server.add_project("ext", external=True)
    await server.add_project("ext2", external=True)
    w: dict[str, Recorder] = {}
    w["orch"] = await server.client("/orchestrator", server.token("bot", "orchestrator", ["ext", "ext2"]))
    w["project_ext"] = await server.client("/project/ext", server.token("alice", "member", ["ext"]))
    w["project_ext2"] = await server.client("/project/ext2", server.token("carol", "member", ["ext2"]))
    w["portal_joined"] = await server.client("/portal", server.token("dave", "viewer", ["ext"]))
    await w["portal_joined"].call("join_project", {"project_name": "ext"})
    w["portal_not_joined"] = await server.client("/portal", server.token("erin", "member", ["ext"]))
    w["portal_narrow"] = await server.client("/portal", server.token("fred", "member", ["ext"]))
    await w["portal_narrow"].call("join_project", {"project_name": "ext"})
    await w["portal_narrow"].call("subscribe_to_events", {"events": ["task_update"]})
    w["monitor_ext"] = await server.client("/monitoring", server.token("gina", "viewer", ["ext"]))
    w["monitor_ext2"] = await server.client("/monitoring", server.token("hank", "viewer", ["ext2"]))
    w["monitor_admin"] = await server.client("/monitoring", server.token("root", "admin"))
    w["chat_ext"] = await server.client("/chat/ext", server.token("ivan", "member", ["ext"]))
    return w


def receivers(world: dict[str, Recorder], event: str) -> set[str]:
    return {name for name, rec in world.items() if rec.of(event)}


@pytest.mark.parametrize("event", PROJECT_EVENTS + MONITORING_EVENTS)
async def test_each_event_reaches_exactly_the_allowed_sockets(world: dict[str, Recorder], event: str) -> None:
    payload = sample(event, "ext")
    reply = await world["orch"].call("publish", {"event": event, "data": payload})
    assert reply == {"ok": True, "data": {"event": event}}
    expected = {"project_ext"}
    if event in PROJECT_EVENTS:
        expected |= {"portal_joined"} | ({"portal_narrow"} if event == "task_update" else set())
    else:
        expected |= {"monitor_ext", "monitor_admin"}
    await world["project_ext"].wait_for(event)
    for name in expected:
        await world[name].wait_for(event)
    await world["project_ext"].quiet()
    assert receivers(world, event) == expected
    received = world["project_ext"].of(event)[0]
    assert received == PUBLISHABLE_EVENTS[event].model_validate(payload).wire(), "delivered as its model says"
    scalars = {k: v for k, v in payload.items() if not isinstance(v, dict)}
    assert {k: received[k] for k in scalars} == scalars


async def test_system_metrics_from_an_orchestrator_reach_all_monitors(world: dict[str, Recorder]) -> None:
    data = sample("system_metrics", "ext")
    assert (await world["orch"].call("publish", {"event": "system_metrics", "data": data}))["ok"] is True
    for name in ("monitor_ext", "monitor_ext2", "monitor_admin"):
        await world[name].wait_for("system_metrics", lambda d: d["cpu_usage"] == 12.5)
    assert not world["project_ext"].of("system_metrics")


async def test_invalid_publications_are_refused_and_deliver_nothing(world: dict[str, Recorder]) -> None:
    orch = world["orch"]
    bad = sample("task_update", "ext") | {"progress": 140}
    reply = await orch.call("publish", {"event": "task_update", "data": bad})
    assert reply["ok"] is False and reply["error"]["type"] == "validation"
    assert reply["error"]["message"] == "Invalid data for task_update"
    assert any(d["path"] == "data.progress" for d in reply["error"]["details"])
    extra = sample("state_change", "ext") | {"secret": 1}
    refused = await orch.call("publish", {"event": "state_change", "data": extra})
    assert refused["ok"] is False and refused["error"]["details"][0]["path"] == "data.secret"
    unknown = await orch.call("publish", {"event": "user_action", "data": {}})
    assert unknown["ok"] is False and unknown["error"]["message"] == "Unknown event: user_action"
    assert [d["path"] for d in unknown["error"]["details"]] == ["event"]
    no_data = await orch.call("publish", {"event": "state_change"})
    assert no_data["ok"] is False and no_data["error"]["message"] == "Invalid payload for publish"
    assert [d["path"] for d in no_data["error"]["details"]] == ["data"]
    foreign = await orch.call("publish", {"event": "state_change", "data": sample("state_change", "demo")})
    assert foreign["ok"] is False and foreign["error"]["code"] == "forbidden"
    await world["project_ext"].quiet()
    assert not world["project_ext"].of("task_update") and not world["project_ext"].of("state_change")


async def test_projects_do_not_leak_into_each_other(world: dict[str, Recorder]) -> None:
    await world["orch"].call("publish", {"event": "task_update", "data": sample("task_update", "ext2")})
    await world["project_ext2"].wait_for("task_update")
    await world["project_ext"].quiet()
    assert receivers(world, "task_update") == {"project_ext2"}


async def test_monitoring_subscription_narrows(world: dict[str, Recorder]) -> None:
    monitor = world["monitor_ext"]
    await monitor.call("subscribe_to_events", {"events": ["test_output"]})
    await world["orch"].call("publish", {"event": "agent_activity", "data": sample("agent_activity", "ext")})
    await world["orch"].call("publish", {"event": "test_output", "data": sample("test_output", "ext")})
    await monitor.wait_for("test_output")
    await world["monitor_admin"].wait_for("agent_activity")
    assert not monitor.of("agent_activity")


async def test_commands_for_external_projects_reach_the_orchestrator(
    server: LiveServer, world: dict[str, Recorder]
) -> None:
    async def answer(data: dict[str, Any]) -> dict[str, Any]:
        assert data["project_name"] == "ext" and data["user_id"] == "ivan"
        return {"success": True, "result": {"message": f"ran {data['command']}", "args": data["args"]}}

    world["orch"].sio.on("command", answer, namespace="/orchestrator")
    chat = world["chat_ext"]
    await chat.call("send_message", {"content": "/sprint plan S-1 S-2", "type": "command"})
    result = await chat.wait_for("command_result")
    assert result["success"] is True and result["command"] == "/sprint plan"
    assert result["result"]["message"] == "ran /sprint plan"
    assert result["result"]["args"] == {"story_ids": ["S-1", "S-2"]}
    response = await chat.wait_for("message_received", lambda m: m["type"] == "response")
    assert response["embed_data"]["title"] == "/sprint plan"


async def test_an_admin_can_narrow_one_project_on_monitoring(world: dict[str, Recorder]) -> None:
    admin = world["monitor_admin"]
    reply = await admin.call("subscribe_to_events", {"events": ["test_output"], "project_name": "ext"})
    assert reply["ok"] is True
    await world["orch"].call("publish", {"event": "agent_activity", "data": sample("agent_activity", "ext")})
    await world["orch"].call("publish", {"event": "agent_activity", "data": sample("agent_activity", "ext2")})
    await world["orch"].call("publish", {"event": "test_output", "data": sample("test_output", "ext")})
    await admin.wait_for("test_output")
    await admin.wait_for("agent_activity", lambda a: a["project_name"] == "ext2")
    assert [a["project_name"] for a in admin.of("agent_activity")] == ["ext2"]
