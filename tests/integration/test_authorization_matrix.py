"""The authorization matrix (issue 4): every namespace × every client event × viewer / member / admin ×
their own project / a foreign one. The expected outcomes come from decisions §2 and §4, written out
here as a table, not derived from the implementation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import socketio

from agent_portal.settings import SecurityLimits
from support import LiveServer, live_server, make_settings

ROLES = {"viewer": ["demo"], "member": ["demo"], "admin": ["*"]}
OK, FORBIDDEN, REFUSED = "ok", "forbidden", "refused at connect"

# decisions §2: what each role may do.
WRITE = {"viewer": False, "member": True, "admin": True}


def may_see(role: str, project: str) -> bool:
    return role == "admin" or project == "demo"


def expected(role: str, namespace: str, event: str, project: str) -> str:
    scoped = namespace.startswith(("/project/", "/chat/"))
    if namespace == "/admin" and role != "admin":
        return REFUSED
    if namespace == "/orchestrator":
        return REFUSED
    if scoped and not may_see(role, project):
        return REFUSED
    if event in ("join_project", "leave_project", "subscribe_to_events"):
        return OK if may_see(role, project) else FORBIDDEN
    if event in (
        "resolve_approval",
        "send_message",
        "typing_start",
        "typing_stop",
        "add_reaction",
        "remove_reaction",
    ):
        return OK if WRITE[role] else FORBIDDEN
    return OK


def payload(event: str, namespace: str, project: str, message_id: str) -> Any:
    if namespace == "/monitoring" and event == "subscribe_to_events":
        return {"events": ["agent_activity"], "project_name": project}
    return {
        "join_project": {"project_name": project},
        "leave_project": {"project_name": project},
        "subscribe_to_events": {"events": ["state_change"], "project_name": project},
        "get_snapshot": {},
        "resolve_approval": {"request_id": "no-such-request", "approved": True},
        "send_message": {"content": "hello", "type": "message"},
        "typing_start": {},
        "typing_stop": {},
        "get_history": {"limit": 5},
        "add_reaction": {"message_id": message_id, "emoji": "👍"},
        "remove_reaction": {"message_id": message_id, "emoji": "👍"},
        "get_test_output": {"cycle_id": "no-such-cycle"},
        "get_config": {"config_type": "system"},
        "update_config": {"config_type": "user", "changes": {"chat_history_page": 60}},
        "get_audit_log": {"limit": 5},
        "publish": {"event": "state_change", "data": {}},
    }[event]


EVENTS = {
    "/portal": ["join_project", "leave_project", "subscribe_to_events"],
    "/project/{p}": [
        "join_project",
        "leave_project",
        "subscribe_to_events",
        "get_snapshot",
        "resolve_approval",
    ],
    "/chat/{p}": [
        "send_message",
        "typing_start",
        "typing_stop",
        "get_history",
        "add_reaction",
        "remove_reaction",
    ],
    "/monitoring": ["subscribe_to_events", "get_test_output"],
    "/admin": ["get_config", "update_config", "get_audit_log"],
    "/orchestrator": ["publish"],
}
CASES = [
    (role, ns_template, event, project)
    for role in ROLES
    for ns_template, events in EVENTS.items()
    for event in events
    for project in ("demo", "other")
]


@pytest.fixture(scope="module")
def matrix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("matrix")


@pytest.fixture
async def matrix_server(tmp_path: Path) -> Any:
    limits = SecurityLimits(events_per_second=1000, events_per_minute=60_000, max_connections=1000)
    async with live_server(replace(make_settings(tmp_path), security=limits)) as server:
        await server.add_project("demo")
        await server.add_project("other")
        yield server


async def outcome(server: LiveServer, role: str, namespace: str, event: str, data: Any) -> str:
    token = server.token(f"{role}-user", role, ROLES[role])
    try:
        client = await server.client(namespace, token)
    except socketio.exceptions.ConnectionError:
        return REFUSED
    reply = await client.call(event, data)
    await client.close()
    if reply["ok"]:
        return OK
    code = reply["error"]["code"]
    return FORBIDDEN if code == "forbidden" else f"error {code}"


async def test_authorization_matrix(matrix_server: LiveServer) -> None:
    server = matrix_server
    messages = {}
    for project in ("demo", "other"):
        admin_chat = await server.client(f"/chat/{project}", server.token("root", "admin"))
        sent = await admin_chat.call("send_message", {"content": "react to me", "type": "message"})
        messages[project] = sent["data"]["message_id"]
        await admin_chat.close()
    mismatches = []
    for role, template, event, project in CASES:
        namespace = template.format(p=project)
        got = await outcome(
            server, role, namespace, event, payload(event, namespace, project, messages[project])
        )
        want = expected(role, namespace, event, project)
        if got != want:
            mismatches.append(f"{role:7} {namespace:15} {event:20} {project}: expected {want}, got {got}")
    assert not mismatches, "\n".join(mismatches)
    assert len(CASES) > 100


async def test_orchestrator_identity_is_confined(server: LiveServer) -> None:
    await server.add_project("ext", external=True)
    await server.add_project("ext2", external=True)
    token = server.token("bot", "orchestrator", ["ext"])
    for namespace in ("/portal", "/project/ext", "/chat/ext", "/monitoring", "/admin"):
        with pytest.raises(socketio.exceptions.ConnectionError):
            await server.client(namespace, token)
    orch = await server.client("/orchestrator", token)
    foreign = {
        "project_name": "ext2",
        "old_state": "IDLE",
        "new_state": "BACKLOG_READY",
        "timestamp": "2026-11-25T20:00:00.000Z",
        "triggered_by": "bot",
    }
    reply = await orch.call("publish", {"event": "state_change", "data": foreign})
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
    embedded = {**foreign, "project_name": "demo"}
    reply = await orch.call("publish", {"event": "state_change", "data": embedded})
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
