"""`system_metrics` from real measurements on /monitoring, and structured logs (issue 3)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from agent_portal.logs import JsonFormatter
from support import live_server, make_settings


async def test_system_metrics_are_measured_and_pushed(tmp_path: Path) -> None:
    async with live_server(replace(make_settings(tmp_path), metrics_interval_seconds=1.0)) as server:
        await server.add_project("demo")
        monitor = await server.client("/monitoring", server.token("vic", "viewer"))
        await server.client("/portal", server.token("alice"))
        first = await monitor.wait_for("system_metrics", timeout=3)
        second = await monitor.wait_for("system_metrics", lambda m: m is not first and m != first, timeout=3)
    assert second["active_connections"] == 2
    assert 0 <= second["cpu_usage"] <= 100 and 0 < second["memory_usage"] <= 100
    assert second["disk_usage"] == pytest.approx(psutil.disk_usage(str(tmp_path)).percent, abs=5)
    assert second["network_io"]["bytes_sent"] >= first["network_io"]["bytes_sent"] > 0
    assert second["uptime"] > first["uptime"] >= 0
    assert second["error_rate"] == 0


def test_logs_are_json_with_their_context() -> None:
    record = logging.LogRecord(
        "agent_portal.gateway", logging.ERROR, __file__, 1, "handler failed", None, None
    )
    record.sid = "abc123"
    record.event = "send_message"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "handler failed" and entry["level"] == "error"
    assert entry["sid"] == "abc123" and entry["event"] == "send_message"
    assert entry["time"].endswith("+00:00")
