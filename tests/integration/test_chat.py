"""/chat/{name}: messages by the spec's Joi rules, history paging, threads, reactions, typing."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from support import LiveServer, live_server, make_settings

GOOD = {"content": "hello", "type": "message"}


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"content": "", "type": "message"}, "content"),
        ({"content": "x" * 2001, "type": "message"}, "content"),
        ({"type": "message"}, "content"),
        ({"content": "hi"}, "type"),
        ({"content": "hi", "type": "shout"}, "type"),
        ({"content": "hi", "type": "message", "thread_id": "not-a-uuid"}, "thread_id"),
        (
            {"content": "hi", "type": "message", "attachments": [{"name": "a", "size": 1, "type": "t"}] * 6},
            "attachments",
        ),
        (
            {
                "content": "hi",
                "type": "message",
                "attachments": [{"name": "a", "size": 10485761, "type": "t"}],
            },
            "attachments.0.size",
        ),
        (
            {"content": "hi", "type": "message", "attachments": [{"size": 1, "type": "t"}]},
            "attachments.0.name",
        ),
        ({"content": "hi", "type": "message", "extra": 1}, "extra"),
        ({"content": 42, "type": "message"}, "content"),
    ],
)
async def test_send_message_follows_the_joi_schema(server: LiveServer, payload: dict, path: str) -> None:  # type: ignore[type-arg]
    chat = await server.client("/chat/demo", server.token("alice"))
    reply = await chat.call("send_message", payload)
    assert reply["ok"] is False and reply["error"]["type"] == "validation"
    error = await chat.wait_for("validation_error")
    assert error["message"] == "Invalid message format"
    assert path in {d["path"] for d in error["details"]}
    assert not chat.of("message_received")
    assert (await chat.call("get_history", {}))["data"]["messages"] == [], "a refused message is not stored"


async def test_a_message_reaches_everyone_in_the_chat_and_is_kept(server: LiveServer) -> None:
    alice = await server.client("/chat/demo", server.token("alice"))
    bob = await server.client("/chat/demo", server.token("bob"), transports=["polling"])
    elsewhere = await server.client("/chat/other", server.token("carol", "member", ["other"]))
    reply = await alice.call("send_message", {"content": "x" * 2000, "type": "message"})
    assert reply["ok"] is True
    message = await bob.wait_for("message_received")
    assert message["message_id"] == reply["data"]["message_id"]
    assert (
        message["user_id"] == "alice" and message["type"] == "message" and message["project_name"] == "demo"
    )
    await alice.wait_for("message_received")
    await elsewhere.quiet()
    assert not elsewhere.of("message_received")


async def test_history_pages_backwards(server: LiveServer) -> None:
    chat = await server.client("/chat/demo", server.token("alice", "admin", ["*"]))
    server.app.services.limiter.config = server.app.services.limiter.config.model_copy(
        update={"events_per_second": 1000, "events_per_minute": 10000}
    )
    for i in range(7):
        await chat.call("send_message", {"content": f"m{i}", "type": "message"})
    page = (await chat.call("get_history", {"limit": 3}))["data"]
    assert [m["content"] for m in page["messages"]] == ["m4", "m5", "m6"] and page["has_more"] is True
    older = (await chat.call("get_history", {"limit": 3, "before": page["messages"][0]["timestamp"]}))["data"]
    assert [m["content"] for m in older["messages"]] == ["m1", "m2", "m3"]
    assert (await chat.call("get_history", {"limit": 101}))["ok"] is False
    by_id = await chat.call(
        "get_history", {"limit": 3, "before_message_id": page["messages"][0]["message_id"]}
    )
    assert [m["content"] for m in by_id["data"]["messages"]] == ["m1", "m2", "m3"], "an exact cursor"


async def test_threads(server: LiveServer) -> None:
    alice = await server.client("/chat/demo", server.token("alice"))
    bob = await server.client("/chat/demo", server.token("bob"))
    parent = (await alice.call("send_message", GOOD))["data"]["message_id"]
    first = await bob.call(
        "send_message", {"content": "reply 1", "type": "thread_reply", "thread_id": parent}
    )
    created = await alice.wait_for("thread_created")
    assert created["parent_message_id"] == parent and created["created_by"] == "bob"
    thread_id = created["thread_id"]
    assert thread_id != parent and first["data"]["thread_id"] == thread_id
    reply = await alice.wait_for("message_received", lambda m: m["type"] == "thread")
    assert reply["thread_id"] == thread_id
    await alice.call("send_message", {"content": "reply 2", "type": "thread_reply", "thread_id": thread_id})
    updated = await bob.wait_for("thread_updated", lambda u: u["message_count"] == 2)
    assert updated["participants"] == ["bob", "alice"] and updated["thread_id"] == thread_id
    assert len(alice.of("thread_created")) == 1
    in_thread = (await alice.call("get_history", {"thread_id": thread_id}))["data"]["messages"]
    assert [m["content"] for m in in_thread] == ["reply 1", "reply 2"]
    by_parent = (await alice.call("get_history", {"thread_id": parent}))["data"]["messages"]
    assert by_parent == in_thread, "a thread is also named by its parent message"
    channel = (await bob.call("get_history", {}))["data"]
    assert [m["content"] for m in channel["messages"]] == ["hello"], "replies stay in their thread"
    assert channel["threads"] == [
        {
            "thread_id": thread_id,
            "parent_message_id": parent,
            "message_count": 2,
            "last_message_at": channel["threads"][0]["last_message_at"],
            "participants": ["bob", "alice"],
        }
    ], "a reloaded page can rebuild its threads"
    missing = await alice.call(
        "send_message", {"content": "x", "type": "thread_reply", "thread_id": str(uuid.uuid4())}
    )
    assert missing["ok"] is False and missing["error"]["code"] == "thread_not_found"
    no_thread = await alice.call("send_message", {"content": "x", "type": "thread_reply"})
    assert no_thread["ok"] is False and no_thread["error"]["type"] == "validation"


async def test_reactions(server: LiveServer) -> None:
    alice = await server.client("/chat/demo", server.token("alice"))
    bob = await server.client("/chat/demo", server.token("bob"))
    message = (await alice.call("send_message", GOOD))["data"]["message_id"]
    await alice.call("add_reaction", {"message_id": message, "emoji": "👍"})
    await bob.call("add_reaction", {"message_id": message, "emoji": "👍"})
    again = await bob.call("add_reaction", {"message_id": message, "emoji": "👍"})
    assert again["data"]["changed"] is False
    update = await alice.wait_for("reaction_updated", lambda u: u["reactions"][0]["count"] == 2)
    assert update["reactions"] == [{"emoji": "👍", "count": 2, "user_ids": ["alice", "bob"]}]
    await alice.call("remove_reaction", {"message_id": message, "emoji": "👍"})
    history = (await bob.call("get_history", {}))["data"]["messages"]
    assert history[0]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": ["bob"]}]
    wrong = await bob.call("add_reaction", {"message_id": "nope", "emoji": "👍"})
    assert wrong["error"]["code"] == "message_not_found"


async def test_typing_reaches_the_others_and_lapses(tmp_path: Path) -> None:
    async with live_server(replace(make_settings(tmp_path), typing_lapse_seconds=0.3)) as server:
        await server.add_project("demo")
        alice = await server.client("/chat/demo", server.token("alice"))
        bob = await server.client("/chat/demo", server.token("bob"))
        await alice.call("typing_start")
        started = await bob.wait_for("typing_start")
        assert started["user_id"] == "alice" and started["project_name"] == "demo"
        stopped = await bob.wait_for("typing_stop", timeout=3)
        assert stopped["user_id"] == "alice"
        assert not alice.of("typing_start"), "the typist is not told about itself"
        await alice.call("typing_start")
        await bob.wait_for("typing_start", lambda _d: len(bob.of("typing_start")) == 2)
        await alice.close()
        await bob.wait_for("typing_stop", lambda _d: len(bob.of("typing_stop")) == 2, timeout=2)


async def test_viewers_read_but_do_not_write(server: LiveServer) -> None:
    viewer = await server.client("/chat/demo", server.token("vera", "viewer"))
    refused = await viewer.call("send_message", GOOD)
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    assert (await viewer.call("typing_start"))["error"]["code"] == "forbidden"
    command = await viewer.call("send_message", {"content": "/sprint plan", "type": "command"})
    assert command["ok"] is False and command["error"]["code"] == "forbidden"
    state = await viewer.call("send_message", {"content": "/state", "type": "command"})
    assert state["ok"] is True
    result = await viewer.wait_for("command_result")
    assert result["success"] is True and result["result"]["state_info"]["current_state"] == "IDLE"
    assert (await viewer.call("get_history", {}))["ok"] is True


async def test_attachments_are_uploaded_then_referenced(server: LiveServer) -> None:
    token = server.token("alice")
    async with httpx.AsyncClient(base_url=server.url) as http:
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": "text/plain",
            "x-file-name": "notes.txt",
        }
        uploaded = await http.post("/api/projects/demo/attachments", content=b"hello", headers=headers)
        assert uploaded.status_code == 201
        attachment = uploaded.json()
        assert attachment["name"] == "notes.txt" and attachment["size"] == 5
        too_big = await http.post(
            "/api/projects/demo/attachments", content=b"x" * (10 * 1024 * 1024 + 1), headers=headers
        )
        assert too_big.status_code == 413
        foreign = await http.post("/api/projects/other/attachments", content=b"x", headers=headers)
        assert foreign.status_code == 403
        download = await http.get(attachment["url"], headers={"authorization": f"Bearer {token}"})
        assert download.content == b"hello"
    chat = await server.client("/chat/demo", token)
    ref = {k: attachment[k] for k in ("id", "name", "size", "type")}
    sent = await chat.call("send_message", {"content": "see file", "type": "message", "attachments": [ref]})
    assert sent["ok"] is True
    message = await chat.wait_for("message_received")
    assert message["attachments"][0]["url"] == attachment["url"]
    unknown = await chat.call(
        "send_message",
        {"content": "x", "type": "message", "attachments": [{"name": "a", "size": 1, "type": "t"}]},
    )
    assert unknown["ok"] is False and unknown["error"]["details"][0]["path"] == "attachments.0.id"
    await asyncio.sleep(0)
