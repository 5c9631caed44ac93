"""Every client event of every namespace, once with a good payload and once with a bad one: the good
one is answered `ok`, the bad one with a validation error that changes nothing (issue 2)."""

from __future__ import annotations

from typing import Any

import pytest

from agent_portal.protocol.registry import NamespaceKind, client_events_for
from support import LiveServer

NAMESPACE = {
    NamespaceKind.PORTAL: "/portal",
    NamespaceKind.PROJECT: "/project/demo",
    NamespaceKind.CHAT: "/chat/demo",
    NamespaceKind.MONITORING: "/monitoring",
    NamespaceKind.ADMIN: "/admin",
    NamespaceKind.ORCHESTRATOR: "/orchestrator",
}
STATE_CHANGE = {
    "project_name": "ext",
    "old_state": "IDLE",
    "new_state": "BACKLOG_READY",
    "timestamp": "2026-11-25T20:00:00.000Z",
    "triggered_by": "bot",
}
# (good payload, bad payload) per event; "authenticate" is covered in test_connect_auth.py.
CASES: dict[str, tuple[Any, Any]] = {
    "join_project": ({"project_name": "demo"}, {"project_name": ""}),
    "leave_project": ({"project_name": "demo"}, {"project": "demo"}),
    "subscribe_to_events": ({"events": ["agent_activity"]}, {"events": "agent_activity"}),
    "get_snapshot": ({}, {"full": True}),
    "resolve_approval": ({"request_id": "r-1", "approved": True}, {"request_id": "r-1", "approved": "yes"}),
    "send_message": ({"content": "hi", "type": "message"}, {"content": "hi", "type": "yell"}),
    "typing_start": ({}, {"typing": True}),
    "typing_stop": ({}, [1, 2]),
    "get_history": ({"limit": 10}, {"limit": 0}),
    "add_reaction": (None, {"message_id": "m", "emoji": ""}),
    "remove_reaction": (None, {"message_id": "m"}),
    "get_test_output": ({"cycle_id": "c-1", "after_sequence": 0}, {"cycle_id": "c-1", "after_sequence": -1}),
    "get_config": ({"config_type": "system"}, {"config_type": "secrets"}),
    "update_config": (
        {"config_type": "user", "changes": {"chat_history_page": 40}},
        {"config_type": "user", "changes": {}},
    ),
    "get_audit_log": ({"limit": 5}, {"limit": 501}),
    "publish": ({"event": "state_change", "data": STATE_CHANGE}, {"event": "state_change"}),
}
SUBSCRIBE_GOOD = {
    NamespaceKind.PORTAL: {"events": ["state_change"]},
    NamespaceKind.PROJECT: {"events": ["state_change"]},
    NamespaceKind.MONITORING: {"events": ["agent_activity"]},
}

EVENTS = [
    (kind, event) for kind in NamespaceKind for event in client_events_for(kind) if event != "authenticate"
]


def test_every_client_event_has_a_case() -> None:
    assert {event for _, event in EVENTS} == set(CASES)


@pytest.mark.parametrize(("kind", "event"), EVENTS, ids=[f"{k.value}:{e}" for k, e in EVENTS])
async def test_good_and_bad_payload(server: LiveServer, kind: NamespaceKind, event: str) -> None:
    await server.add_project("ext", external=True)
    if kind is NamespaceKind.ORCHESTRATOR:
        token = server.token("bot", "orchestrator", ["ext"])
    else:
        token = server.token("root", "admin")
    client = await server.client(NAMESPACE[kind], token)
    good, bad = CASES[event]
    if event == "subscribe_to_events":
        good = SUBSCRIBE_GOOD[kind]
    if good is None:  # reactions need a message to react to
        chat = await server.client("/chat/demo", token)
        message = (await chat.call("send_message", {"content": "react to me", "type": "message"}))["data"]
        good = {"message_id": message["message_id"], "emoji": "🎉"}
    before = await server.app.services.store.list_audit(before=None, limit=500)

    refused = await client.call(event, bad)
    assert refused["ok"] is False, refused
    assert refused["error"]["type"] == "validation" and refused["error"]["details"], refused
    assert (await client.wait_for("validation_error"))["details"]
    after = await server.app.services.store.list_audit(before=None, limit=500)
    assert len(after) == len(before), "a refused event leaves no trace in the store"

    accepted = await client.call(event, good)
    assert accepted["ok"] is True, accepted
