"""The server's own counts, for `system_metrics` and for `GET /metrics` (Prometheus text)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from agent_portal.protocol.registry import AUTHENTICATE_EVENT, CLIENT_EVENTS


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = time.monotonic()
        self._events_in = Counter(
            "agent_portal_events_in", "Client events received", ["event"], registry=self.registry
        )
        self._events_out = Counter(
            "agent_portal_events_out", "Server events published", ["event"], registry=self.registry
        )
        self._handler_seconds = Histogram(
            "agent_portal_handler_seconds", "Time to handle a client event", ["event"], registry=self.registry
        )
        self._command_seconds = Histogram(
            "agent_portal_command_seconds", "Chat command latency", ["command"], registry=self.registry
        )
        self._errors = Counter(
            "agent_portal_errors", "Server faults while handling events", registry=self.registry
        )
        self.connections = Gauge(
            "agent_portal_connections", "Connected sockets", ["namespace"], registry=self.registry
        )
        self.approvals_pending = Gauge(
            "agent_portal_approvals_pending", "Approvals waiting for a decision", registry=self.registry
        )
        self._recent: deque[tuple[float, bool]] = deque(maxlen=10_000)
        # (metric, label value) -> its child. `labels()` checks its arguments and takes a lock on
        # every call: 2 % of the server's CPU in the product bench, three calls per publication.
        # The label values are a fixed set (known event names, "other").
        self._children: dict[tuple[Any, str], Any] = {}

    def _child(self, metric: Any, value: str) -> Any:
        key = (metric, value)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(value)
        return child

    def event_in(self, event: str) -> None:
        self._child(self._events_in, _label(event)).inc()

    def event_out(self, event: str, _data: object = None) -> None:
        self._child(self._events_out, event).inc()

    def handled(self, event: str, seconds: float) -> None:
        self._child(self._handler_seconds, _label(event)).observe(seconds)
        self._recent.append((time.monotonic(), False))

    def command(self, command: str, seconds: float) -> None:
        self._command_seconds.labels(command=command).observe(seconds)

    def error(self) -> None:
        self._errors.inc()
        self._recent.append((time.monotonic(), True))

    def error_rate(self, window: float = 60.0) -> float:
        """Faults per handled event over the last minute, in percent."""
        cutoff = time.monotonic() - window
        recent = [failed for stamp, failed in self._recent if stamp >= cutoff]
        handled = sum(1 for failed in recent if not failed)
        return 100.0 * sum(recent) / handled if handled else 0.0

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def render(self) -> bytes:
        return generate_latest(self.registry)


_KNOWN = frozenset({AUTHENTICATE_EVENT}).union(*(set(events) for events in CLIENT_EVENTS.values()))


def _label(event: str) -> str:
    # Event names come from clients: only known names become labels, so a fuzzer cannot grow the set.
    return event if event in _KNOWN else "other"
