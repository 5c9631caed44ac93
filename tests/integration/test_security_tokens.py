"""Tokens and passwords under attack (decisions §2): forged, tampered, confused and incomplete tokens
are refused with the right code at connect and via `authenticate`; passwords are stored as argon2
hashes only and unknown users go through the same hash check; the login endpoint is rate-limited;
oversize HTTP bodies are refused with 413 whether or not they declare their length."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio
from argon2 import PasswordHasher
from attack import FakeClock

from agent_portal import cli
from agent_portal.auth.passwords import PasswordService
from agent_portal.auth.policy import ROLE_PERMISSIONS
from support import LiveServer, live_server, make_settings

MEMBER_PERMISSIONS = sorted(p.value for p in ROLE_PERMISSIONS["member"])


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "role": "member",
        "permissions": MEMBER_PERMISSIONS,
        "projects": ["demo"],
        "iat": now,
        "exp": now + 3600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in claims().items() if k not in names}


def tampered(secret: str, **changes: Any) -> str:
    """A genuine token whose payload is edited after signing (the signature is kept)."""
    head, _body, signature = jwt.encode(claims(), secret, algorithm="HS256").split(".")
    return f"{head}.{_b64(claims(**changes))}.{signature}"


def cases(secret: str) -> dict[str, tuple[str, str]]:
    """name -> (token, expected refusal code)."""
    good = jwt.encode(claims(), secret, algorithm="HS256")
    head, body, signature = good.split(".")
    return {
        "expired": (jwt.encode(claims(exp=int(time.time()) - 5), secret, algorithm="HS256"), "token_expired"),
        "wrong signature": (jwt.encode(claims(), "x" * 48, algorithm="HS256"), "invalid_token"),
        "signature stripped": (f"{head}.{body}.", "invalid_token"),
        "alg none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{body}.", "invalid_token"),
        "alg None with signature": (
            f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{body}.{signature}",
            "invalid_token",
        ),
        "HS512 with the right secret": (jwt.encode(claims(), secret, algorithm="HS512"), "invalid_token"),
        "HS384 with the right secret": (jwt.encode(claims(), secret, algorithm="HS384"), "invalid_token"),
        "RS256 header": (f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{body}.{signature}", "invalid_token"),
        "role upgraded": (tampered(secret, role="admin"), "invalid_token"),
        "projects widened": (tampered(secret, projects=["*"]), "invalid_token"),
        "permission added": (tampered(secret, permissions=[*MEMBER_PERMISSIONS, "admin"]), "invalid_token"),
        "expiry extended": (tampered(secret, exp=int(time.time()) + 10**8), "invalid_token"),
        # Signed with the real secret but not what the server issues: refused all the same.
        "signed, permissions beyond the role": (
            jwt.encode(claims(permissions=[*MEMBER_PERMISSIONS, "admin"]), secret, algorithm="HS256"),
            "invalid_token",
        ),
        "signed, unknown role": (jwt.encode(claims(role="root"), secret, algorithm="HS256"), "invalid_token"),
        "signed, projects not a list": (
            jwt.encode(claims(projects="demo"), secret, algorithm="HS256"),
            "invalid_token",
        ),
        "signed, sub not a string": (jwt.encode(claims(sub=42), secret, algorithm="HS256"), "invalid_token"),
        **{
            f"signed, no {name}": (jwt.encode(without(name), secret, algorithm="HS256"), "invalid_token")
            for name in ("sub", "role", "exp", "projects", "permissions")
        },
        "not a JWT": ("definitely-not-a-token", "invalid_token"),
        "huge": ("a" * 8000, "invalid_token"),
    }


async def connect_outcome(server: LiveServer, token: str) -> str:
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data: errors.append(data), namespace="/portal")
    try:
        await sio.connect(
            server.url,
            namespaces=["/portal"],
            auth={"token": token},
            transports=["websocket"],
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        return str(errors[0]["data"]["code"]) if errors else "no reason given"
    finally:
        await sio.disconnect()
    return "accepted"


async def test_bad_tokens_are_refused_at_connect(server: LiveServer) -> None:
    assert server.settings.secret is not None
    got = {}
    for name, (token, _code) in cases(server.settings.secret).items():
        got[name] = await connect_outcome(server, token)
    assert got == {name: code for name, (_t, code) in cases(server.settings.secret).items()}
    # The genuine token is accepted: the cases fail for what they change, not for how they are built.
    assert (await server.client("/portal", jwt.encode(claims(), server.settings.secret))).sio.connected


async def test_bad_tokens_are_refused_by_authenticate(server: LiveServer) -> None:
    assert server.settings.secret is not None
    client = await server.client("/chat/demo")
    admin = await server.client("/admin", server.token("root", "admin"))
    got: dict[str, Any] = {}
    for name, (token, _code) in cases(server.settings.secret).items():
        # A fresh second per attempt: the per-IP budget is not what this test is about.
        server.app.services.limiter.clock = FakeClock(10_000.0 + 2 * len(got))
        reply = await client.call("authenticate", {"token": token})
        got[name] = reply["error"]["code"] if reply["ok"] is False else "accepted"
        assert client.of("authentication_failed")[-1]["code"] == got[name]
    assert got == {name: code for name, (_t, code) in cases(server.settings.secret).items()}
    # Still unauthenticated after all that, and every failure is in the audit trail.
    assert (await client.call("get_history", {}))["error"]["code"] == "not_authenticated"
    failures = [a for a in admin.of("user_action") if a["action"] == "authentication_failed"]
    assert len(failures) == len(got) and all(a["ip_address"] == "127.0.0.1" for a in failures)
    good = jwt.encode(claims(), server.settings.secret)
    assert (await client.call("authenticate", {"token": good}))["ok"] is True


def test_passwords_are_stored_only_as_argon2_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password = "correct horse battery staple"
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    code = cli.main(
        [
            "user",
            "add",
            "lead",
            "--role",
            "member",
            "--project",
            "demo",
            "--password-stdin",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    db = tmp_path / "agent-portal.db"
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE username = 'lead'").fetchone()
    assert stored.startswith("$argon2id$") and password not in stored
    assert PasswordHasher().verify(stored, password)
    for path in tmp_path.iterdir():
        if path.is_file():
            assert password.encode() not in path.read_bytes(), f"plaintext password in {path.name}"

    async def login() -> int:
        async with live_server(make_settings(tmp_path)) as live, httpx.AsyncClient(base_url=live.url) as http:
            reply = await http.post("/api/auth/login", json={"username": "lead", "password": password})
            return reply.status_code

    assert asyncio.run(login()) == 200


class SpyHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__()
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


async def test_unknown_users_go_through_a_real_hash_check(server: LiveServer) -> None:
    spy = SpyHasher()
    service = PasswordService(spy)
    server.app.services.passwords = service
    await server.add_user("lead", "correct horse battery", "member", ["demo"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        ghost = await http.post("/api/auth/login", json={"username": "ghost", "password": "guess"})
        wrong = await http.post("/api/auth/login", json={"username": "lead", "password": "guess"})
    assert ghost.status_code == wrong.status_code == 401
    assert ghost.json() == wrong.json(), "an unknown user and a wrong password look the same"
    assert len(spy.verified) == 2, "both attempts ran argon2: no early return for an unknown user"
    assert spy.verified[0].startswith("$argon2id$"), "the unknown user was checked against the dummy hash"
    assert spy.verified[0] != spy.verified[1]
    assert service.verify(None, "not-a-real-password") is False, "the dummy hash never logs anyone in"


async def test_login_is_rate_limited_per_ip_with_retry_after(server: LiveServer) -> None:
    await server.add_user("lead", "correct horse battery", "member", ["demo"])
    clock = FakeClock()
    server.app.services.login_limiter.clock = clock

    async def attempt(http: httpx.AsyncClient, password: str = "guess") -> httpx.Response:
        return await http.post("/api/auth/login", json={"username": "lead", "password": password})

    async with httpx.AsyncClient(base_url=server.url) as http:
        assert [(await attempt(http)).status_code for _ in range(5)] == [401] * 5
        burst = await attempt(http)
        assert burst.status_code == 429 and burst.json()["error"]["code"] == "rate_limited"
        assert burst.json()["error"]["retry_after"] == 1001
        clock.advance_ms(1001)
        assert [(await attempt(http)).status_code for _ in range(5)] == [401] * 5
        # Ten in a minute: even the right password waits, so guessing cannot be interleaved with it.
        minute = await attempt(http, "correct horse battery")
        assert minute.status_code == 429 and 58_000 < minute.json()["error"]["retry_after"] <= 60_000
        clock.advance_ms(minute.json()["error"]["retry_after"])
        assert (await attempt(http, "correct horse battery")).status_code == 200


def _chunks(total: int, size: int = 256 * 1024) -> Callable[[], AsyncIterator[bytes]]:
    async def gen() -> AsyncIterator[bytes]:
        sent = 0
        while sent < total:
            n = min(size, total - sent)
            sent += n
            yield b"x" * n

    return gen


async def test_oversize_http_bodies_are_refused(server: LiveServer) -> None:
    token = server.token("alice")
    auth = {"authorization": f"Bearer {token}"}
    limit = 10 * 1024 * 1024
    url = "/api/projects/demo/attachments"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        # Login: 64 KiB, declared or streamed without a length.
        big = json.dumps({"username": "lead", "password": "p" * (64 * 1024)}).encode()
        declared = await http.post(
            "/api/auth/login", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        server.app.services.login_limiter.clock = FakeClock(20_000.0)
        streamed = await http.post("/api/auth/login", content=_chunks(65 * 1024)())
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"
        # Attachments: 10 MiB is accepted, one byte more is not, however it is sent.
        at_limit = await http.post(url, content=b"a" * limit, headers=auth | {"x-file-name": "ok.bin"})
        assert at_limit.status_code == 201 and at_limit.json()["size"] == limit
        over = await http.post(url, content=b"a" * (limit + 1), headers=auth)
        assert over.status_code == 413
        chunked = await http.post(url, content=_chunks(limit + 1)(), headers=auth)
        assert chunked.status_code == 413 and "content-length" not in chunked.request.headers
    rows = await server.app.services.store.get_attachment(at_limit.json()["id"])
    assert rows is not None and rows.size == limit
