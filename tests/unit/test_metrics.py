"""The per-event counts are plain numbers exported by a collector (services/metrics.py); what a
scrape reads must be what prometheus_client's own Counter and Histogram render for the same events."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from agent_portal.services.metrics import Metrics

# bounds, values just past them, both infinities' side, and a value equal to a bound
SECONDS = [0.0, 0.005, 0.0051, 0.01, 0.3, 1.0, 2.4999, 10.0, 11.0, 1e6, 0.075]


def _lines(text: bytes, prefix: str) -> list[str]:
    return sorted(line for line in text.decode().splitlines() if line.startswith(prefix))


def test_the_event_counts_render_as_prometheus_client_renders_them() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    events_in = Counter("agent_portal_events_in", "Client events received", ["event"], registry=reference)
    events_out = Counter("agent_portal_events_out", "Server events published", ["event"], registry=reference)
    handler = Histogram(
        "agent_portal_handler_seconds", "Time to handle a client event", ["event"], registry=reference
    )
    for n, seconds in enumerate(SECONDS):
        event = ("publish", "send_message", "no_such_event")[n % 3]
        label = event if event != "no_such_event" else "other"
        metrics.event_in(event)
        events_in.labels(label).inc()
        metrics.handled(event, seconds)
        handler.labels(label).observe(seconds)
        metrics.event_out("test_output")
        events_out.labels("test_output").inc()
    ours, theirs = metrics.render(), generate_latest(reference)
    for prefix in (
        "agent_portal_events_in_total",
        "agent_portal_events_out_total",
        "agent_portal_handler_seconds_bucket",
        "agent_portal_handler_seconds_count",
        "agent_portal_handler_seconds_sum",
        "# HELP agent_portal_events",
        "# TYPE agent_portal_events",
        "# HELP agent_portal_handler",
        "# TYPE agent_portal_handler",
    ):
        expected = [line for line in _lines(theirs, prefix) if "_created" not in line]
        assert expected, prefix
        assert _lines(ours, prefix) == expected, prefix


def test_the_error_rate_counts_the_last_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    metrics = Metrics()
    assert metrics.error_rate() == 0.0
    for _ in range(3):
        metrics.handled("publish", 0.001)
    metrics.error()
    metrics.handled("publish", 0.001)  # the failed one is handled too
    assert metrics.error_rate() == 25.0
    now[0] += 30.5
    for _ in range(4):
        metrics.handled("publish", 0.001)
    assert metrics.error_rate() == 12.5
    now[0] += 40  # the fault and its second are more than a minute old
    assert metrics.error_rate() == 0.0
    metrics.error()
    metrics.handled("publish", 0.001)
    assert metrics.error_rate() == 20.0  # the 4 of 30 s ago and this one
