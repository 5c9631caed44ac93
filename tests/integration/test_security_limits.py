"""Abuse limits of decisions §8 on a live server with real clients: 10 events per second and 100 per
minute per user across all of its connections and namespaces (per IP before authentication),
`rate_limited` with a `retry_after` that is exact, the ban after three minute-limit violations in ten
minutes and its expiry, the connection cap, audit entries, and other users unaffected throughout.

The limits are the spec's own numbers; only the limiter's clock is frozen, so "the same second" and
"a minute later" are decided by the test, not by sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import socketio
from attack import FakeClock, freeze_limiter, refusal, row_counts

from support import LiveServer, Recorder, live_server, make_settings

UA = {"User-Agent": "limits-test/1.0"}


async def ok(client: Recorder, event: str, data: Any = None) -> Any:
    reply = await client.call(event, data)
    assert reply["ok"] is True, (event, reply)
    return reply.get("data")


async def limited(client: Recorder, event: str, data: Any = None, code: str = "rate_limited") -> int:
    """Sends an event that must be refused by the limiter; returns its retry_after (ms)."""
    seen = len(client.of("rate_limited"))
    reply = await client.call(event, data)
    assert reply["ok"] is False and reply["error"]["code"] == code, (event, reply)
    retry = reply["error"]["details"]["retry_after"]
    assert isinstance(retry, int) and retry > 0
    await client.wait_for("rate_limited", lambda _d: len(client.of("rate_limited")) > seen)
    announced = client.of("rate_limited")[-1]
    assert announced == {"message": "Rate limit exceeded", "retry_after": retry}
    return retry


async def fill_minute(clock: FakeClock, calls: list[tuple[Recorder, str, Any]], count: int = 100) -> None:
    """`count` accepted events at 10 per (fake) second, rotating over the given sockets and events."""
    for i in range(count):
        if i and i % 10 == 0:
            clock.advance_ms(1000)
        client, event, data = calls[i % len(calls)]
        await ok(client, event, data)


async def test_ten_per_second_spans_every_connection_and_namespace(server: LiveServer) -> None:
    clock = freeze_limiter(server)
    token = server.token("alice")
    portal = await server.client("/portal", token)
    chat = await server.client("/chat/demo", token, transports=["polling"])
    # One Engine.IO session holding two namespaces: still the same user's budget.
    sio = socketio.AsyncClient(reconnection=False)
    server.clients.append(sio)
    project, monitoring = Recorder(sio, "/project/demo"), Recorder(sio, "/monitoring")
    await sio.connect(
        server.url,
        namespaces=["/project/demo", "/monitoring"],
        auth={"token": token},
        transports=["websocket"],
        wait_timeout=5,
    )
    bob = await server.client("/project/demo", server.token("bob"))
    calls: list[tuple[Recorder, str, Any]] = [
        (portal, "subscribe_to_events", {"events": ["task_update"]}),
        (chat, "get_history", {}),
        (project, "get_snapshot", None),
        (monitoring, "subscribe_to_events", {"events": ["test_output"]}),
    ]
    for i in range(10):
        client, event, data = calls[i % 4]
        await ok(client, event, data)
    # The 11th in the same second is refused on every socket of alice, whatever its namespace...
    retry = await limited(chat, "get_history", {})
    assert retry == 1001, "all ten came at one instant: the oldest leaves the window 1 s later (rounded up)"
    for client, event, data in calls:
        await limited(client, event, data)
    # ...and bob is served throughout.
    for _ in range(10):
        await ok(bob, "get_snapshot")
    # Just before retry_after it is still refused; at retry_after it is accepted.
    clock.advance_ms(retry - 2)
    await limited(project, "get_snapshot")
    clock.advance_ms(2)
    await ok(project, "get_snapshot")


async def test_hundred_per_minute_with_exact_retry_after_audit_and_no_effect(server: LiveServer) -> None:
    clock = freeze_limiter(server)
    token = server.token("root", "admin")
    chat = await server.client("/chat/demo", token, headers=UA)
    admin = await server.client("/admin", token, headers=UA)
    watcher = await server.client("/admin", server.token("ops", "admin"))
    bystander = await server.client("/chat/demo", server.token("bob"))
    await fill_minute(
        clock,
        [(chat, "get_history", {"limit": 1}), (admin, "get_config", {"config_type": "security"})],
    )
    before = row_counts(server)
    # 100 events between t0 and t0+9 s: the 101st waits for the first to leave the minute at t0+60 s.
    retry = await limited(chat, "send_message", {"content": "over the limit", "type": "message"})
    assert 51_000 <= retry <= 51_001
    await limited(
        admin, "update_config", {"config_type": "security", "changes": {"events_per_minute": 60000}}
    )
    hit = await watcher.wait_for("user_action", lambda a: a["action"] == "rate_limited")
    assert hit["user_id"] == "root" and hit["success"] is False and hit["resource"] == "/chat/demo"
    assert hit["ip_address"] == "127.0.0.1" and hit["user_agent"] == "limits-test/1.0"
    # A refused event changes nothing: no row, no broadcast, no config change.
    await bystander.quiet()
    assert row_counts(server) == before
    assert not bystander.of("message_received") and not watcher.of("config_changed")
    assert server.app.services.config.security.events_per_minute == 100
    # Other users keep their own budget.
    await ok(bystander, "send_message", {"content": "hello", "type": "message"})
    clock.advance_ms(retry - 2)
    await limited(chat, "get_history", {})
    clock.advance_ms(2)
    await ok(chat, "send_message", {"content": "after the wait", "type": "message"})
    assert row_counts(server)["chat_messages"] == before["chat_messages"] + 2
    assert len([a for a in watcher.of("user_action") if a["action"] == "rate_limited"]) == 1, (
        "one episode over the minute limit is one violation"
    )


async def test_retry_after_waits_for_both_windows(server: LiveServer) -> None:
    """The minute frees a slot in 0.4 s, but the last second is full for 0.9 s: retry_after must be
    the later of the two, or a client that obeys it is refused again."""
    clock = freeze_limiter(server)
    chat = await server.client("/chat/demo", server.token("alice"))
    calls: list[tuple[Recorder, str, Any]] = [(chat, "get_history", {"limit": 1})]
    await fill_minute(clock, calls, 90)  # t0 .. t0+8 s
    clock.advance_ms(51_500)  # t0+59.5 s
    await fill_minute(clock, calls, 10)
    clock.advance_ms(100)
    retry = await limited(chat, "get_history", {})
    assert 900 <= retry <= 901
    clock.advance_ms(retry - 2)
    await limited(chat, "get_history", {})
    clock.advance_ms(2)
    await ok(chat, "get_history", {})


async def test_per_ip_before_authentication(server: LiveServer) -> None:
    clock = freeze_limiter(server)
    token = server.token("alice")
    anonymous = [await server.client("/portal"), await server.client("/chat/demo")]
    member = await server.client("/portal", server.token("carol"))
    for i in range(10):
        reply = await anonymous[i % 2].call("join_project", {"project_name": "demo"})
        assert reply["error"]["code"] == "not_authenticated"
    await limited(anonymous[0], "join_project", {"project_name": "demo"})
    # Authenticating is an event too: the IP's budget is spent.
    await limited(anonymous[1], "authenticate", {"token": token})
    # An authenticated user on the same IP has its own budget.
    await ok(member, "join_project", {"project_name": "demo"})
    clock.advance_ms(1001)
    await ok(anonymous[1], "authenticate", {"token": token})
    await ok(anonymous[1], "get_history", {})


async def test_ban_after_three_minute_violations_and_its_expiry(server: LiveServer) -> None:
    clock = freeze_limiter(server)
    token = server.token("alice")
    portal = await server.client("/portal", token, headers=UA)
    chat = await server.client("/chat/demo", token, headers=UA)
    bob = await server.client("/chat/demo", server.token("bob"))
    watcher = await server.client("/admin", server.token("ops", "admin"))
    calls: list[tuple[Recorder, str, Any]] = [
        (portal, "join_project", {"project_name": "demo"}),
        (chat, "get_history", {"limit": 1}),
    ]
    for _episode in range(2):
        await fill_minute(clock, calls)
        await limited(chat, "get_history", {})
        await ok(bob, "get_history", {})
        clock.advance_ms(61_000)  # the minute empties; the violations stay (10-minute window)
    await fill_minute(clock, calls)
    first = await limited(chat, "get_history", {}, code="banned")
    assert first == 300_000, "banned for 5 minutes"
    banned = await watcher.wait_for("user_action", lambda a: a["action"] == "banned")
    assert banned["user_id"] == "alice" and banned["ip_address"] == "127.0.0.1"
    assert banned["user_agent"] == "limits-test/1.0"
    actions = [a["action"] for a in watcher.of("user_action") if a["user_id"] == "alice"]
    assert actions.count("rate_limited") == 2 and actions.count("banned") == 1

    # During the ban every event is dropped with the rest of the ban, and changes nothing.
    clock.advance_ms(100_000)
    before = row_counts(server)
    rest = await limited(chat, "send_message", {"content": "spam", "type": "message"}, code="banned")
    assert 199_000 < rest <= 200_001
    assert await limited(portal, "leave_project", {"project_name": "demo"}, code="banned") > 199_000
    await bob.quiet()
    assert row_counts(server) == before and not bob.of("message_received")
    # New connects are refused with `banned`, on any namespace, at connect and via `authenticate`.
    for namespace in ("/portal", "/monitoring", "/chat/demo"):
        assert (await refusal(server, namespace, {"token": token}, headers=UA))["code"] == "banned"
    refused = await watcher.wait_for(
        "user_action", lambda a: a["action"] == "connect_refused" and a["error"] == "banned"
    )
    assert refused["user_id"] == "alice" and refused["user_agent"] == "limits-test/1.0"
    late = await server.client("/project/demo")
    reply = await late.call("authenticate", {"token": token})
    assert reply["ok"] is False and reply["error"]["code"] == "banned"
    await late.disconnected.wait()
    # Bob is untouched by alice's ban.
    await ok(bob, "send_message", {"content": "still here", "type": "message"})
    await server.client("/portal", server.token("bob"))

    # The ban ends on time: events and connects are accepted again.
    clock.advance_ms(rest - 2)
    await limited(chat, "get_history", {}, code="banned")
    clock.advance_ms(2)
    await ok(chat, "get_history", {})
    again = await server.client("/monitoring", token)
    assert again.sio.connected


async def test_connection_cap_counts_engineio_sessions_of_every_namespace(server: LiveServer) -> None:
    token = server.token("root", "admin")
    watcher = await server.client("/admin", server.token("ops", "admin"))
    sessions = [
        await server.client("/portal", token),
        await server.client("/chat/demo", token, transports=["polling"]),
        await server.client("/project/demo", token, transports=["polling", "websocket"]),
        await server.client("/monitoring", token),
        await server.client("/admin", token, headers=UA),
    ]
    assert server.app.services.connections.sessions_of("root") == 5
    for namespace, transports in (("/portal", ["websocket"]), ("/admin", ["polling"])):
        data = await refusal(server, namespace, {"token": token}, transports=transports, headers=UA)
        assert data["code"] == "too_many_connections"
    audited = await watcher.wait_for(
        "user_action", lambda a: a["action"] == "connect_refused" and a["error"] == "too_many_connections"
    )
    assert audited["user_id"] == "root" and audited["user_agent"] == "limits-test/1.0"
    # Connecting anonymously and authenticating later is the same sixth session: refused, then closed.
    late = await server.client("/portal")
    reply = await late.call("authenticate", {"token": token})
    assert reply["ok"] is False and reply["error"]["code"] == "too_many_connections"
    await late.disconnected.wait()
    # Other users are unaffected; the refused attempts took no slot; a closed session frees one.
    await server.client("/portal", server.token("bob"))
    assert server.app.services.connections.sessions_of("root") == 5
    await sessions[0].close()
    await sessions[0].disconnected.wait()
    assert (await server.client("/portal", token)).sio.connected


async def test_security_config_changes_live_and_survives_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    changes = {"events_per_second": 3, "max_connections": 2, "token_ttl_seconds": 120}
    async with live_server(settings) as server:
        await server.add_project("demo")
        await server.add_user("lead", "correct horse battery", "member", ["demo"])
        clock = freeze_limiter(server)
        admin = await server.client("/admin", server.token("root", "admin"), headers=UA)
        alice = await server.client("/chat/demo", server.token("alice"))
        for _ in range(3):
            await ok(alice, "get_history", {})
        await ok(
            admin, "update_config", {"config_type": "security", "changes": changes, "reason": "incident"}
        )
        audited = await admin.wait_for("user_action", lambda a: a["action"] == "config_change")
        assert audited["success"] is True and audited["user_agent"] == "limits-test/1.0"
        # At once: the fourth event of this second is over the new limit...
        assert await limited(alice, "get_history", {}) == 1001
        # ...a second session is allowed, a third is not...
        await server.client("/portal", server.token("alice"))
        assert (await refusal(server, "/monitoring", {"token": server.token("alice")}))["code"] == (
            "too_many_connections"
        )
        # ...and logins issue tokens with the new lifetime.
        async with httpx.AsyncClient(base_url=server.url) as http:
            body = (
                await http.post(
                    "/api/auth/login", json={"username": "lead", "password": "correct horse battery"}
                )
            ).json()
        expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        assert 100 < (expires - datetime.now(UTC)).total_seconds() <= 120
        clock.advance_ms(1001)

    async with live_server(settings) as server:
        admin = await server.client("/admin", server.token("root", "admin"))
        stored = (await ok(admin, "get_config", {"config_type": "security"}))["config"]
        assert {k: stored[k] for k in changes} == changes
        assert stored["events_per_minute"] == 100, "untouched keys keep their values"
        assert server.app.services.limiter.config.events_per_second == 3
        token = server.token("alice")
        await server.client("/portal", token)
        await server.client("/monitoring", token)
        assert (await refusal(server, "/portal", {"token": token}))["code"] == "too_many_connections"
