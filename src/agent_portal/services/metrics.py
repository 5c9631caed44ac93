"""The server's own counts, for `system_metrics` and for `GET /metrics` (Prometheus text)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter as Counts
from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from agent_portal.protocol.registry import AUTHENTICATE_EVENT, CLIENT_EVENTS

# Faults per handled event are reported over this many seconds (`system_metrics.error_rate`).
ERROR_WINDOW = 60


class Metrics:
    """Three counts move with every event (received, handled with its time, published): they are
    plain numbers here, read by a collector when `/metrics` is scraped. prometheus_client's Counter
    and Histogram take a lock per update and the histogram walks its buckets: with the per-event
    error-rate stamp, 6 % of the server's CPU on the product bench, where an update here costs a
    dict increment (docs/performance.md, session 13)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = time.monotonic()
        self.events_in: Counts[str] = Counts()
        self.events_out: Counts[str] = Counts()
        self.handler_seconds: dict[str, _Timings] = {}
        self.registry.register(_EventCollector(self))
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
        # [second, handled, faults], one per second with events, the newest last.
        self._recent: deque[list[int]] = deque(maxlen=ERROR_WINDOW + 1)

    def event_in(self, event: str) -> None:
        self.events_in[_label(event)] += 1

    def event_out(self, event: str, _data: object = None) -> None:
        self.events_out[event] += 1

    def handled(self, event: str, seconds: float) -> None:
        label = _label(event)
        timings = self.handler_seconds.get(label)
        if timings is None:
            timings = self.handler_seconds[label] = _Timings()
        timings.observe(seconds)
        self._second()[1] += 1

    def command(self, command: str, seconds: float) -> None:
        self._command_seconds.labels(command=command).observe(seconds)

    def error(self) -> None:
        self._errors.inc()
        self._second()[2] += 1

    def _second(self) -> list[int]:
        now = int(time.monotonic())
        if not self._recent or self._recent[-1][0] != now:
            self._recent.append([now, 0, 0])
        return self._recent[-1]

    def error_rate(self, window: int = ERROR_WINDOW) -> float:
        """Faults per handled event over the last minute, in percent."""
        cutoff = int(time.monotonic()) - window
        handled = faults = 0
        for second, ok, failed in self._recent:
            if second > cutoff:
                handled += ok
                faults += failed
        return 100.0 * faults / handled if handled else 0.0

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Timings:
    """A histogram's numbers for one label, on prometheus_client's default buckets."""

    __slots__ = ("counts", "total")
    BOUNDS = Histogram.DEFAULT_BUCKETS  # ends with +Inf

    def __init__(self) -> None:
        self.counts = [0] * len(self.BOUNDS)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # a value equal to a bound is in that bound's bucket (le)
        self.counts[bisect_left(self.BOUNDS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, out = 0, []
        for bound, count in zip(self.BOUNDS, self.counts, strict=True):
            cumulative += count
            out.append((floatToGoString(bound), float(cumulative)))  # type: ignore[no-untyped-call]
        return out


class _EventCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        received = CounterMetricFamily("agent_portal_events_in", "Client events received", labels=["event"])
        for event, count in sorted(m.events_in.items()):
            received.add_metric([event], count)
        published = CounterMetricFamily(
            "agent_portal_events_out", "Server events published", labels=["event"]
        )
        for event, count in sorted(m.events_out.items()):
            published.add_metric([event], count)
        timings = HistogramMetricFamily(
            "agent_portal_handler_seconds", "Time to handle a client event", labels=["event"]
        )
        for event, timing in sorted(m.handler_seconds.items()):
            timings.add_metric([event], timing.buckets(), timing.total)
        yield from (received, published, timings)


_KNOWN = frozenset({AUTHENTICATE_EVENT}).union(*(set(events) for events in CLIENT_EVENTS.values()))


def _label(event: str) -> str:
    # Event names come from clients: only known names become labels, so a fuzzer cannot grow the set.
    return event if event in _KNOWN else "other"
