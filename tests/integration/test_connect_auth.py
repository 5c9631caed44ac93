"""Connecting and authenticating on every namespace, over every transport (decisions §1, §2)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import socketio

from support import ALL_TRANSPORTS, LiveServer, live_server, make_settings

NAMESPACES = ["/portal", "/project/demo", "/chat/demo", "/monitoring", "/admin"]


async def refusal(server: LiveServer, namespace: str, auth: dict[str, object] | None) -> dict[str, object]:
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[object] = []
    sio.on("connect_error", lambda data: errors.append(data), namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url, namespaces=[namespace], auth=auth, transports=["websocket"], wait_timeout=5
        )
    await sio.disconnect()
    assert errors, "the server must say why it refused"
    packet = errors[0]
    # socket.io-client exposes `data` as err.data; python-socketio hands the whole packet payload.
    assert isinstance(packet, dict) and isinstance(packet.get("data"), dict)
    assert packet["message"] == packet["data"]["message"]
    return dict(packet["data"])


@pytest.mark.parametrize("transports", ALL_TRANSPORTS, ids=["websocket", "polling", "upgrade"])
@pytest.mark.parametrize("namespace", NAMESPACES)
async def test_admin_connects_everywhere_on_every_transport(
    server: LiveServer, namespace: str, transports: list[str]
) -> None:
    client = await server.client(namespace, server.token("root", "admin"), transports=transports)
    assert client.sio.connected
    if transports == ["polling", "websocket"]:
        for _ in range(100):
            if client.sio.transport() == "websocket":
                break
            await asyncio.sleep(0.02)
        assert client.sio.transport() == "websocket"


@pytest.mark.parametrize(
    ("role", "projects", "namespace", "code"),
    [
        ("viewer", ["demo"], "/admin", "forbidden"),
        ("member", ["demo"], "/admin", "forbidden"),
        ("member", ["demo"], "/project/other", "forbidden"),
        ("member", ["demo"], "/chat/other", "forbidden"),
        ("admin", ["*"], "/project/nope", "project_not_found"),
        ("admin", ["*"], "/chat/nope", "project_not_found"),
        ("member", ["nope"], "/project/nope", "project_not_found"),
        ("orchestrator", ["demo"], "/portal", "forbidden"),
        ("member", ["demo"], "/orchestrator", "forbidden"),
    ],
)
async def test_refusals_carry_a_code(
    server: LiveServer, role: str, projects: list[str], namespace: str, code: str
) -> None:
    data = await refusal(server, namespace, {"token": server.token("u1", role, projects)})
    assert data["code"] == code
    assert isinstance(data["message"], str) and data["message"]


async def test_a_project_added_while_the_server_runs_can_be_connected_to(server: LiveServer) -> None:
    # Projects found are remembered (Services.project_exists); one not found yet must not be.
    token = server.token("root", "admin")
    assert (await refusal(server, "/project/later", {"token": token}))["code"] == "project_not_found"
    await server.add_project("later")
    client = await server.client("/project/later", token)
    assert client.sio.connected
    assert "later" in server.app.services.known_projects


async def test_bad_tokens_are_refused_with_their_code(server: LiveServer) -> None:
    expired = server.token("u1", "member", ttl=-10)
    assert (await refusal(server, "/portal", {"token": expired}))["code"] == "token_expired"
    assert (await refusal(server, "/portal", {"token": "not.a.jwt"}))["code"] == "invalid_token"
    good = server.token("u1", "member")
    head, body, sig = good.split(".")
    tampered = f"{head}.{body[:-2]}{'AA' if body[-2:] != 'AA' else 'BB'}.{sig}"
    assert (await refusal(server, "/portal", {"token": tampered}))["code"] == "invalid_token"


async def test_unknown_namespace_is_refused(server: LiveServer) -> None:
    data = await refusal(server, "/nowhere", {"token": server.token("root", "admin")})
    assert data["code"] == "invalid_namespace"


async def test_orchestrator_namespace_needs_a_service_token(server: LiveServer) -> None:
    assert (await refusal(server, "/orchestrator", None))["code"] == "invalid_token"


async def test_authenticate_after_connect(server: LiveServer) -> None:
    client = await server.client("/portal")
    refused = await client.call("join_project", {"project_name": "demo"})
    assert refused["ok"] is False and refused["error"]["code"] == "not_authenticated"
    failed = await client.wait_for("authentication_failed")
    assert failed == {"message": "Not authenticated", "code": "not_authenticated"}

    bad = await client.call("authenticate", {"token": "garbage"})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_token"

    mismatch = await client.call("authenticate", {"token": server.token("alice"), "user_id": "mallory"})
    assert mismatch["error"]["code"] == "user_mismatch"

    ok = await client.call("authenticate", {"token": server.token("alice"), "user_id": "alice"})
    assert ok["ok"] is True and ok["data"]["user_id"] == "alice"
    assert "projects:read" in ok["data"]["permissions"] and "admin" not in ok["data"]["permissions"]
    authenticated = await client.wait_for("authenticated")
    assert authenticated["user_id"] == "alice"
    joined = await client.call("join_project", {"project_name": "demo"})
    assert joined["ok"] is True


async def test_user_id_in_a_payload_must_match_the_token(server: LiveServer) -> None:
    client = await server.client("/portal", server.token("alice"))
    reply = await client.call("join_project", {"project_name": "demo", "user_id": "bob"})
    assert reply["error"]["code"] == "user_mismatch"
    assert "joined_project" not in client.names()


async def test_unauthenticated_socket_is_dropped_after_the_grace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with live_server(replace(make_settings(tmp_path), auth_grace_seconds=0.3)) as server:
        client = await server.client("/portal")
        await asyncio.wait_for(client.disconnected.wait(), 3)
        assert {"message": "Authentication timeout", "code": "auth_timeout"} in client.of(
            "authentication_failed"
        )
        # An authenticated socket is not affected by the grace.
        kept = await server.client("/portal", server.token("alice"))
        await asyncio.sleep(0.6)
        assert kept.sio.connected


async def test_sixth_connection_of_a_user_is_refused(server: LiveServer) -> None:
    token = server.token("alice")
    clients = [await server.client("/portal", token) for _ in range(5)]
    data = await refusal(server, "/portal", {"token": token})
    assert data["code"] == "too_many_connections"
    # Another user is unaffected, and a slot frees when a connection closes.
    await server.client("/portal", server.token("bob"))
    await clients[0].close()
    await asyncio.sleep(0.2)
    await server.client("/portal", token)


async def test_one_engineio_session_with_several_namespaces_counts_once(server: LiveServer) -> None:
    token = server.token("alice")
    sio = socketio.AsyncClient(reconnection=False)
    server.clients.append(sio)
    await sio.connect(
        server.url,
        namespaces=["/portal", "/project/demo", "/chat/demo", "/monitoring"],
        auth={"token": token},
        transports=["websocket"],
        wait_timeout=5,
    )
    assert server.app.services.connections.sessions_of("alice") == 1


async def test_cross_origin_handshakes_are_refused(server: LiveServer) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        evil = await http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 400
        own = await http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": server.url}
        )
        assert own.status_code == 200
        dev = await http.get(
            f"{server.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://localhost:5173"}
        )
        assert dev.status_code == 200
    sio = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url,
            namespaces=["/portal"],
            auth={"token": server.token("alice")},
            transports=["websocket"],
            headers={"Origin": "https://evil.example"},
            wait_timeout=3,
        )
    await sio.disconnect()


async def test_unauthenticated_connections_are_capped_per_ip(server: LiveServer) -> None:
    waiting = [await server.client("/portal") for _ in range(5)]
    data = await refusal(server, "/portal", None)
    assert data["code"] == "too_many_connections"
    # A user with a token is counted as itself, not against the IP.
    await server.client("/portal", server.token("alice"))
    # Authenticating moves a socket off the IP's count, freeing a slot for another newcomer.
    assert (await waiting[0].call("authenticate", {"token": server.token("bob")}))["ok"] is True
    await server.client("/portal")
