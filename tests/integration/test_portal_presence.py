"""/portal and /project/{name}: joining, presence per user, subscriptions (spec §1, decisions §4)."""

from __future__ import annotations

from support import LiveServer


async def test_join_answers_with_the_project_state(server: LiveServer) -> None:
    client = await server.client("/portal", server.token("alice"))
    reply = await client.call("join_project", {"project_name": "demo", "user_id": "alice"})
    assert reply["ok"] is True
    data = reply["data"]
    assert data["project_name"] == "demo"
    assert data["current_state"] == "IDLE"
    assert data["active_users"] == 1
    assert data["last_activity"].endswith("Z")
    assert await client.wait_for("joined_project") == data


async def test_join_refusals_change_nothing(server: LiveServer) -> None:
    client = await server.client("/portal", server.token("alice", "member", ["demo"]))
    forbidden = await client.call("join_project", {"project_name": "other"})
    assert forbidden["ok"] is False and forbidden["error"]["code"] == "forbidden"
    assert (await client.wait_for("error"))["code"] == "forbidden"
    admin = await server.client("/portal", server.token("root", "admin"))
    missing = await admin.call("join_project", {"project_name": "nope"})
    assert missing["error"]["code"] == "project_not_found"
    bad = await client.call("join_project", {"project_name": "bad name!"})
    assert bad["error"]["type"] == "validation"
    assert await server.app.services.presence.count("other") == 0
    assert await server.app.services.presence.count("nope") == 0


async def test_presence_counts_users_not_tabs(server: LiveServer) -> None:
    watcher = await server.client("/portal", server.token("bob"))
    await watcher.call("join_project", {"project_name": "demo"})
    alice = server.token("alice")
    tab1 = await server.client("/portal", alice)
    tab2 = await server.client("/project/demo", alice)

    first = await tab1.call("join_project", {"project_name": "demo"})
    assert first["data"]["active_users"] == 2
    joined = await watcher.wait_for("user_joined")
    assert joined["user_id"] == "alice" and joined["project_name"] == "demo"

    second = await tab2.call("join_project", {"project_name": "demo"})
    assert second["data"]["active_users"] == 2
    await watcher.quiet()
    assert len(watcher.of("user_joined")) == 1, "a second tab is not a second presence"
    assert not tab1.of("user_joined"), "a user is not told about itself"

    await tab1.call("leave_project", {"project_name": "demo"})
    await watcher.quiet()
    assert not watcher.of("user_left"), "alice still has a tab in the project"
    await tab2.close()
    left = await watcher.wait_for("user_left")
    assert left["user_id"] == "alice"
    assert await server.app.services.presence.count("demo") == 1


async def test_project_namespace_join_must_name_its_project(server: LiveServer) -> None:
    client = await server.client("/project/demo", server.token("root", "admin"))
    reply = await client.call("join_project", {"project_name": "other"})
    assert reply["ok"] is False and reply["error"]["type"] == "validation"
    assert (await client.call("join_project", {"project_name": "demo"}))["ok"] is True


async def test_subscribe_validates_event_names(server: LiveServer) -> None:
    client = await server.client("/portal", server.token("alice"))
    reply = await client.call("subscribe_to_events", {"events": ["state_change", "made_up"]})
    assert reply["ok"] is False
    error = await client.wait_for("validation_error")
    assert "made_up" in error["message"]
    assert (await client.call("subscribe_to_events", {"events": ["agent_activity"]}))["ok"] is False, (
        "agent_activity is a /monitoring event, not delivered on /portal"
    )
    ok = await client.call("subscribe_to_events", {"events": ["state_change"], "project_name": "demo"})
    assert ok == {"ok": True, "data": {"events": ["state_change"], "project_name": "demo"}}


async def test_leave_without_join_is_harmless(server: LiveServer) -> None:
    client = await server.client("/portal", server.token("alice"))
    assert (await client.call("leave_project", {"project_name": "demo"}))["data"]["left"] is False
