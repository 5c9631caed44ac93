"""Helpers for the security tests: a settable clock for the limiter, refused connects, rows in the
database and the audit trail as /admin sees it."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import socketio

from support import LiveServer

# Tables a refused event must never write to (audit_log is checked separately: refusals of
# security relevance are audited on purpose).
STATE_TABLES = (
    "users",
    "projects",
    "project_state",
    "chat_messages",
    "chat_threads",
    "chat_reactions",
    "attachments",
    "test_output",
    "config",
)


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1000


def freeze_limiter(server: LiveServer) -> FakeClock:
    clock = FakeClock()
    server.app.services.limiter.clock = clock
    return clock


async def refusal(
    server: LiveServer,
    namespace: str,
    auth: dict[str, Any] | None,
    *,
    headers: dict[str, str] | None = None,
    transports: list[str] | None = None,
) -> dict[str, Any]:
    """Connects and expects a refusal; returns the refusal's `{message, code}`."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data: errors.append(data), namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url,
            namespaces=[namespace],
            auth=auth,
            transports=transports or ["websocket"],
            headers=headers or {},
            wait_timeout=5,
        )
    await sio.disconnect()
    assert errors, f"{namespace}: the server must say why it refused"
    data = errors[0].get("data") if isinstance(errors[0], dict) else None
    assert isinstance(data, dict), errors[0]
    return dict(data)


def row_counts(server: LiveServer, tables: tuple[str, ...] = STATE_TABLES) -> dict[str, int]:
    """Rows per table, plus the sum of project_state versions (a write that bumps a version shows)."""
    path = server.settings.data_dir / "agent-portal.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
        counts["project_state.version"] = db.execute(
            "SELECT coalesce(sum(version), 0) FROM project_state"
        ).fetchone()[0]
    return counts


def audit_rows(server: LiveServer) -> list[dict[str, Any]]:
    path = server.settings.data_dir / "agent-portal.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM audit_log ORDER BY id")]
