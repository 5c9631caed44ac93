"""The wire schemas: one model per event, unknown fields refused, dates in one format, and the
TypeScript types generated from them are fresh."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_portal.protocol.client_events import SendMessageRequest
from agent_portal.protocol.common import Timestamp, WireModel, format_timestamp
from agent_portal.protocol.registry import (
    CLIENT_EVENTS,
    MONITORING_PROJECT_EVENTS,
    PROJECT_EVENTS,
    SERVER_EVENTS,
    json_schema,
)
from agent_portal.protocol.server_events import StateChangeEvent

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "spec" / "websocket-api-specification.md"


def test_every_model_forbids_unknown_fields() -> None:
    models = set(SERVER_EVENTS.values()) | {m for events in CLIENT_EVENTS.values() for m in events.values()}
    for model in models:
        assert model.model_config.get("extra") == "forbid", model.__name__


def test_every_spec_event_has_a_model() -> None:
    if not SPEC.exists():
        pytest.fail(f"the spec is expected beside the repository at {SPEC}")
    text = SPEC.read_text()
    spec_events = set(re.findall(r"socket\.on\('([a-z_]+)'", text)) - {"connect", "disconnect", "error", "*"}
    spec_events |= set(re.findall(r"socket\.emit\('([a-z_]+)'", text))
    known = set(SERVER_EVENTS) | {e for events in CLIENT_EVENTS.values() for e in events} | {"authenticate"}
    assert spec_events - known == set()
    assert set(PROJECT_EVENTS) | set(MONITORING_PROJECT_EVENTS) <= set(SERVER_EVENTS)


def test_timestamps_are_utc_with_milliseconds() -> None:
    class M(WireModel):
        at: Timestamp

    berlin = timezone(timedelta(hours=1))
    assert M(at=datetime(2026, 11, 25, 21, 0, 0, 123456, tzinfo=berlin)).wire() == {
        "at": "2026-11-25T20:00:00.123Z"
    }
    assert M.model_validate({"at": "2026-11-25T20:00:00Z"}).at == datetime(2026, 11, 25, 20, tzinfo=UTC)
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    assert format_timestamp(datetime(999, 1, 2, 3, 4, 5, 999999)) == "0999-01-02T03:04:05.999Z"


@settings(max_examples=500)
@given(
    at=st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.one_of(st.none(), st.integers(-23 * 60, 23 * 60)),
)
def test_a_timestamp_is_utc_milliseconds_with_z(at: datetime, offset_minutes: int | None) -> None:
    if offset_minutes is not None:
        at = at.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    text = format_timestamp(at)
    assert text == utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    assert datetime.fromisoformat(text) == utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def test_send_message_is_the_joi_schema() -> None:
    SendMessageRequest.model_validate({"content": "x" * 2000, "type": "command"})
    for bad in (
        {"content": "", "type": "message"},
        {"content": "x" * 2001, "type": "message"},
        {"content": "x", "type": "message", "thread_id": "123"},
        {"content": "x", "type": "message", "attachments": [{"name": "a", "size": 1, "type": "t"}] * 6},
    ):
        with pytest.raises(ValidationError):
            SendMessageRequest.model_validate(bad)


def test_events_are_immutable_and_exclude_unset_optionals() -> None:
    event = StateChangeEvent(
        project_name="p",
        old_state="IDLE",
        new_state="BACKLOG_READY",
        timestamp=datetime.now(UTC),
        triggered_by="u",
    )
    assert "reason" not in event.wire() and "command" not in event.wire()
    with pytest.raises(ValidationError):
        event.project_name = "q"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        StateChangeEvent.model_validate({**event.wire(), "new_state": "DONE"})


def test_json_schema_names_every_event() -> None:
    schema = json_schema()
    assert set(schema["x-server-events"]) == set(SERVER_EVENTS)
    for model_name in schema["x-server-events"].values():
        assert model_name in schema["$defs"]
    json.dumps(schema)


def test_generated_typescript_types_are_fresh() -> None:
    package = ROOT / "clients" / "typescript"
    npm = shutil.which("npm")
    assert npm, "npm is required"
    assert (package / "node_modules").exists(), "run scripts/bootstrap --node"
    result = subprocess.run(
        [npm, "run", "--silent", "check:types"], cwd=package, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
