"""`system_metrics` every few seconds to /monitoring, from real measurements (psutil) and our own counts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psutil

from agent_portal.clock import SystemClock
from agent_portal.gateway.publisher import Publisher
from agent_portal.protocol.server_events import NetworkIO, SystemMetricsEvent
from agent_portal.services.metrics import Metrics

log = logging.getLogger(__name__)


class SystemMetricsLoop:
    def __init__(
        self,
        publisher: Publisher,
        metrics: Metrics,
        clock: SystemClock,
        interval: Callable[[], float],
        counts: Callable[[], tuple[int, int, int]],
        disk_path: str,
        publishes: Callable[[], bool] = lambda: True,
    ) -> None:
        # In a cluster only the orchestrator's node publishes: one stream of metrics, not one per node.
        self._publishes = publishes
        self._publisher = publisher
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._counts = counts
        self._disk_path = disk_path
        self._process = psutil.Process()
        psutil.cpu_percent(None)  # the first reading is meaningless; prime it

    def sample(self) -> SystemMetricsEvent:
        net = psutil.net_io_counters()
        connections, projects, tasks = self._counts()
        return SystemMetricsEvent(
            timestamp=self._clock.now(),
            cpu_usage=psutil.cpu_percent(None),
            memory_usage=psutil.virtual_memory().percent,
            disk_usage=psutil.disk_usage(self._disk_path).percent,
            network_io=NetworkIO(bytes_sent=net.bytes_sent, bytes_received=net.bytes_recv),
            active_connections=connections,
            active_projects=projects,
            active_tasks=tasks,
            error_rate=round(self._metrics.error_rate(), 3),
            uptime=round(self._metrics.uptime(), 3),
        )

    async def run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval())
            if not self._publishes():
                continue
            try:
                await self._publisher.publish("system_metrics", self.sample())
                failing = False
            except Exception:
                if not failing:  # log once per state change, not every tick
                    log.exception("system_metrics failed")
                failing = True
