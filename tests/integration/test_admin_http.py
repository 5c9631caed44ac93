"""/admin (config, audit) and the HTTP routes: health, readiness, metrics, login."""

from __future__ import annotations

import httpx
import pytest

from support import LiveServer


async def test_config_changes_are_validated_persisted_and_broadcast(server: LiveServer) -> None:
    admin = await server.client("/admin", server.token("root", "admin"))
    watcher = await server.client("/admin", server.token("ops", "admin"))
    current = await admin.call("get_config", {"config_type": "security"})
    assert current["data"]["config"]["events_per_second"] == 10
    changed = await admin.call(
        "update_config",
        {"config_type": "security", "changes": {"events_per_second": 20}, "reason": "load test"},
    )
    assert changed["ok"] is True and changed["data"]["config"]["events_per_second"] == 20
    event = await watcher.wait_for("config_changed")
    assert event == {
        "config_type": "security",
        "changed_by": "root",
        "changes": {"events_per_second": 20},
        "timestamp": event["timestamp"],
        "reason": "load test",
    }
    assert server.app.services.limiter.config.events_per_second == 20, "takes effect live"
    stored = await server.app.services.store.get_config("security")
    assert stored is not None and stored.data["events_per_second"] == 20

    bad = await admin.call(
        "update_config", {"config_type": "agent", "changes": {"CodeAgent": {"timeout_minutes": 500}}}
    )
    assert bad["ok"] is False and bad["error"]["details"][0]["path"] == "changes.CodeAgent.timeout_minutes"
    unknown = await admin.call("update_config", {"config_type": "system", "changes": {"nope": 1}})
    assert unknown["ok"] is False
    assert (await admin.call("get_config", {"config_type": "agent"}))["data"]["config"]["CodeAgent"][
        "timeout_minutes"
    ] == 30
    assert len(watcher.of("config_changed")) == 1


async def test_agent_and_system_config_take_effect(server: LiveServer) -> None:
    admin = await server.client("/admin", server.token("root", "admin"))
    await admin.call("update_config", {"config_type": "system", "changes": {"approval_timeout_seconds": 300}})
    chat = await server.client("/chat/demo", server.token("root", "admin"))
    await chat.call("send_message", {"content": '/epic "Payments"', "type": "command"})
    project = await server.client("/project/demo", server.token("root", "admin"))
    snapshot = (await project.call("get_snapshot"))["data"]
    approval = snapshot["pending_approvals"][0]
    from datetime import datetime

    created = datetime.fromisoformat(approval["created_at"].replace("Z", "+00:00"))
    timeout = datetime.fromisoformat(approval["timeout_at"].replace("Z", "+00:00"))
    assert (timeout - created).total_seconds() == 300


async def test_audit_trail(server: LiveServer) -> None:
    admin = await server.client("/admin", server.token("root", "admin"))
    portal = await server.client("/portal", server.token("alice"), headers={"User-Agent": "audit-test/1.0"})
    await portal.call("join_project", {"project_name": "demo"})
    action = await admin.wait_for("user_action", lambda a: a["action"] == "join")
    assert action["user_id"] == "alice" and action["resource"] == "demo" and action["success"] is True
    assert action["ip_address"] == "127.0.0.1" and action["user_agent"] == "audit-test/1.0"
    # Through a trusted proxy (uvicorn trusts 127.0.0.1 by default) the audit has the client's
    # address, not the proxy's.
    proxied = await server.client(
        "/portal", server.token("bob"), headers={"X-Forwarded-For": "203.0.113.7", "User-Agent": "proxied/1"}
    )
    await proxied.call("join_project", {"project_name": "demo"})
    action = await admin.wait_for("user_action", lambda a: a["action"] == "join" and a["user_id"] == "bob")
    assert action["ip_address"] == "203.0.113.7" and action["user_agent"] == "proxied/1"
    import socketio

    bad = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await bad.connect(
            server.url, namespaces=["/admin"], auth={"token": server.token("alice")}, wait_timeout=3
        )
    await bad.disconnect()
    refused = await admin.wait_for("user_action", lambda a: a["action"] == "connect_refused")
    assert refused["success"] is False and refused["error"] == "forbidden"
    log = (await admin.call("get_audit_log", {"limit": 500}))["data"]["entries"]
    assert {"join", "connect_refused"} <= {e["action"] for e in log}
    page = (await admin.call("get_audit_log", {"limit": 1}))["data"]
    assert len(page["entries"]) == 1 and page["has_more"] is True
    older = (await admin.call("get_audit_log", {"limit": 500, "before": page["entries"][0]["timestamp"]}))[
        "data"
    ]
    assert all(e["timestamp"] < page["entries"][0]["timestamp"] for e in older["entries"])


async def test_health_readiness_metrics(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
        chat = await server.client("/chat/demo", server.token("alice"))
        await chat.call("send_message", {"content": "/state", "type": "command"})
        await chat.wait_for("command_result")
        text = (await http.get("/metrics")).text
        assert 'agent_portal_events_in_total{event="send_message"} 1.0' in text
        assert 'agent_portal_command_seconds_count{command="/state"} 1.0' in text
        assert "agent_portal_approvals_pending" in text


async def test_login(server: LiveServer) -> None:
    await server.add_user("lead", "correct horse battery", "member", ["demo"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        ok = await http.post(
            "/api/auth/login", json={"username": "lead", "password": "correct horse battery"}
        )
        assert ok.status_code == 200
        body = ok.json()
        assert body["user_id"] == "lead" and body["project_access"] == ["demo"]
        assert "approvals:resolve" in body["permissions"] and body["expires_at"].endswith("Z")
        wrong = await http.post("/api/auth/login", json={"username": "lead", "password": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
        ghost = await http.post("/api/auth/login", json={"username": "ghost", "password": "nope"})
        assert ghost.status_code == 401
        garbage = await http.post(
            "/api/auth/login", content=b"{", headers={"content-type": "application/json"}
        )
        assert garbage.status_code == 400
        projects = await http.get("/api/projects", headers={"authorization": f"Bearer {body['token']}"})
        assert [p["name"] for p in projects.json()["projects"]] == ["demo"]
    client = await server.client("/project/demo", body["token"])
    assert (await client.call("get_snapshot"))["ok"] is True


async def test_login_is_rate_limited(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        codes = [
            (await http.post("/api/auth/login", json={"username": "x", "password": "y"})).status_code
            for _ in range(12)
        ]
    assert codes.count(429) >= 1 and codes[0] == 401


async def test_server_faults_leak_nothing(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret database password in this message")

    monkeypatch.setattr(server.app.services.store, "list_messages", boom)
    chat = await server.client("/chat/demo", server.token("alice"))
    reply = await chat.call("get_history", {})
    assert reply["ok"] is False
    assert reply["error"]["type"] == "server" and reply["error"]["code"] == "internal"
    assert reply["error"]["message"] == "Internal server error"
    assert "secret" not in str(reply) and "secret" not in str(chat.events)
    assert (await chat.call("send_message", {"content": "still here", "type": "message"}))["ok"] is True
