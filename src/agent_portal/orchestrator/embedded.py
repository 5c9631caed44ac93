"""The embedded orchestrator: the pure domain core, made durable and live.

Every change runs against the project's aggregate under a per-project lock, is saved (optimistic
version check), and only then are its events published and its agent work started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_portal.agents.base import AgentBackend, AgentContext, AgentResult
from agent_portal.auth.policy import Principal
from agent_portal.clock import SystemClock
from agent_portal.domain.events import DomainEvent, TestOutput
from agent_portal.domain.models import AgentType, AgentWork, OrchestrationMode, ProjectAggregate, TDDState
from agent_portal.domain.service import CommandOutcome, OrchestratorService, new_project
from agent_portal.gateway.publisher import Publisher
from agent_portal.protocol.registry import SERVER_EVENTS
from agent_portal.services.config import ConfigService
from agent_portal.services.metrics import Metrics
from agent_portal.storage.store import Store, TestOutputRecord, VersionConflict

log = logging.getLogger(__name__)

OUTPUT_FLUSH_SECONDS = 0.1
VERIFIED_PHASES = frozenset({TDDState.TEST_RED, TDDState.CODE_GREEN, TDDState.REFACTOR})
MAX_CHUNK_CHARS = 16_000


class RandomIds:
    def new(self, prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class _Cached:
    version: int
    aggregate: ProjectAggregate


class EmbeddedOrchestrator:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        clock: SystemClock,
        config: ConfigService,
        metrics: Metrics,
        backend_for: Callable[[AgentWork, AgentContext], AgentBackend],
        tests: AgentBackend,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._config = config
        self._metrics = metrics
        self._backend_for = backend_for
        self._tests = tests
        self.service = OrchestratorService(clock, RandomIds())
        self._locks: dict[str, asyncio.Lock] = {}
        self._cache: dict[str, _Cached] = {}
        self._deadlines: dict[str, Any] = {}
        self._work: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    # --- the aggregate, durable ----------------------------------------------------------------

    async def _load(self, project: str) -> _Cached:
        cached = self._cache.get(project)
        if cached is None:
            loaded = await self._store.load_project_state(project)
            if loaded is None:
                cached = _Cached(
                    0, new_project(project, OrchestrationMode(self._config.system.orchestration_mode))
                )
            else:
                cached = _Cached(loaded[0], ProjectAggregate.from_dict(loaded[1]))
            self._cache[project] = cached
        # System settings take effect live, on every project.
        system = self._config.system
        cached.aggregate.settings.approval_timeout_seconds = system.approval_timeout_seconds
        cached.aggregate.settings.max_concurrent_cycles = system.max_concurrent_cycles
        cached.aggregate.mode = OrchestrationMode(system.orchestration_mode)
        return cached

    async def apply(
        self, project: str, change: Callable[[ProjectAggregate], CommandOutcome]
    ) -> CommandOutcome:
        lock = self._locks.setdefault(project, asyncio.Lock())
        async with lock:
            cached = await self._load(project)
            try:
                outcome = change(cached.aggregate)
                if outcome.changed:
                    cached.version = await self._store.save_project_state(
                        project, cached.aggregate.to_dict(), cached.version, self._clock.now()
                    )
                    await self._store.add_test_output(
                        [
                            TestOutputRecord(
                                e.cycle_id, e.sequence_number, project, e.output_type, e.content, e.timestamp
                            )
                            for e in outcome.events
                            if isinstance(e, TestOutput)
                        ]
                    )
                    await self._store.touch_project(project, self._clock.now())
            except VersionConflict:
                # Another writer got there first; the cached copy is stale. Callers may retry.
                self._cache.pop(project, None)
                raise
            except Exception:
                # The aggregate may be half-changed in memory; only the stored copy is trustworthy.
                self._cache.pop(project, None)
                raise
            self._track_deadline(project, cached.aggregate)
            # Published under the lock: events of one project leave in the order they were committed.
            await self._publish(outcome.events)
        for work in outcome.work:
            self._dispatch(work)
        return outcome

    async def _publish(self, events: list[DomainEvent]) -> None:
        for event in events:
            model = SERVER_EVENTS[event.event_name].model_validate(event.payload())
            await self._publisher.publish(event.event_name, model)

    async def _aggregate(self, project: str) -> ProjectAggregate:
        async with self._locks.setdefault(project, asyncio.Lock()):
            return (await self._load(project)).aggregate

    # --- ProjectOrchestrator -------------------------------------------------------------------

    async def run_command(
        self, project: str, command: str, args: dict[str, Any], user: Principal
    ) -> dict[str, Any]:
        outcome = await self.apply(
            project, lambda agg: self.service.execute(agg, command, args, by=user.user_id)
        )
        return outcome.result

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]:
        outcome = await self.apply(
            project,
            lambda agg: self.service.resolve_approval(agg, request_id, approved, user.user_id, comment),
        )
        return outcome.result

    async def snapshot(self, project: str) -> dict[str, Any]:
        snapshot = self.service.snapshot(await self._aggregate(project))
        # Which agents are real programs and which are the demo, so pages can label demo work.
        agents = self._config.agents
        snapshot["agents"] = {
            agent.value: "command" if getattr(agents, agent.value).command else "demo" for agent in AgentType
        }
        return snapshot

    async def current_state(self, project: str) -> str:
        return (await self._aggregate(project)).state.value

    def active_tasks(self) -> int:
        return sum(len(c.aggregate.active_tasks()) for c in self._cache.values())

    # --- agent work ----------------------------------------------------------------------------

    def _dispatch(self, work: AgentWork) -> None:
        task = asyncio.create_task(self._run_work(work), name=f"agent-{work.task_id}")
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _run_work(self, work: AgentWork) -> None:
        project = work.project_name
        try:
            record = await self._store.get_project(project)
            settings = getattr(self._config.agents, work.agent_type.value)
            context = AgentContext(
                project_path=Path(record.path) if record and record.path else None,
                timeout_seconds=settings.timeout_minutes * 60,
                test_command=self._config.system.test_command,
            )
            if work.kind == "task":
                started = await self.apply(project, lambda agg: self.service.task_started(agg, work.task_id))
                if not started.success:
                    return
            reporter = _Reporter(self, work)
            began = time.perf_counter()
            try:
                backend = self._backend_for(work, context)
                result = await backend.run(work, context, reporter)
                if self._needs_verification(backend, work, context, result):
                    result = await self._verify(work, context, reporter, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("agent backend failed", extra={"task_id": work.task_id, "project": project})
                result = AgentResult(success=False, error=f"Agent failed: {type(exc).__name__}")
            finally:
                await reporter.close()
            log.info(
                "agent work done",
                extra={
                    "task_id": work.task_id,
                    "success": result.success,
                    "seconds": time.perf_counter() - began,
                },
            )
            await self._report(work, result)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent work failed", extra={"task_id": work.task_id, "project": project})

    @staticmethod
    def _needs_verification(
        backend: AgentBackend, work: AgentWork, context: AgentContext, result: AgentResult
    ) -> bool:
        # A real agent program only says it is done; whether the tests fail (red) or pass (green) is
        # for the project's own test command to tell. The demo backend plays its results itself.
        return (
            backend.name == "command"
            and work.kind == "task"
            and work.phase in VERIFIED_PHASES
            and result.success
            and not result.test_results
            and context.project_path is not None
        )

    async def _verify(
        self, work: AgentWork, context: AgentContext, reporter: _Reporter, result: AgentResult
    ) -> AgentResult:
        tests = await self._tests.run(dataclasses.replace(work, kind="run_tests"), context, reporter)
        return dataclasses.replace(
            result,
            test_results=tests.test_results,
            metrics=result.metrics or tests.metrics,
            output=f"{result.output}\n{tests.output}".strip(),
        )

    async def _report(self, work: AgentWork, result: AgentResult) -> None:
        project, svc = work.project_name, self.service
        if work.kind == "run_tests":
            if work.cycle_id is not None:
                cycle_id = work.cycle_id
                await self.apply(
                    project,
                    lambda agg: svc.record_test_results(agg, cycle_id, result.test_results, result.metrics),
                )
        elif result.success:
            await self.apply(
                project,
                lambda agg: svc.task_succeeded(
                    agg,
                    work.task_id,
                    result.output,
                    result.test_results,
                    result.metrics,
                    list(result.proposed_stories),
                ),
            )
        else:
            await self.apply(
                project, lambda agg: svc.task_failed(agg, work.task_id, result.error or "failed")
            )

    # --- lifecycle: recovery after a restart, approval expiry ----------------------------------

    async def start(self) -> None:
        """Takes over every embedded project from what is stored (after a restart, or from a cluster
        node that held the orchestrator lease before): interrupted work is marked and run again."""
        self._cache.clear()
        self._deadlines.clear()
        for record in await self._store.list_projects():
            if record.external:
                continue
            try:
                await self.apply(record.name, self.service.recover_after_restart)
            except Exception:
                log.exception("recovery failed", extra={"project": record.name})

    def _track_deadline(self, project: str, aggregate: ProjectAggregate) -> None:
        deadline = self.service.next_approval_deadline(aggregate)
        if deadline is None:
            self._deadlines.pop(project, None)
        else:
            self._deadlines[project] = deadline
            self._wake.set()
        self._metrics.approvals_pending.set(
            sum(len(c.aggregate.pending_approvals()) for c in self._cache.values())
        )

    async def run_expiry(self) -> None:
        """Expires approvals exactly when they time out, also those created before a restart."""
        while True:
            now = self._clock.now()
            due = [p for p, at in self._deadlines.items() if at <= now]
            for project in due:
                try:
                    await self.apply(
                        project, lambda agg: self.service.expire_approvals(agg, self._clock.now())
                    )
                except Exception:
                    log.exception("approval expiry failed", extra={"project": project})
                    self._deadlines.pop(project, None)
            upcoming = min(self._deadlines.values(), default=None)
            wait = (
                5.0
                if upcoming is None
                else max(0.01, min(5.0, (upcoming - self._clock.now()).total_seconds()))
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def stop(self) -> None:
        for task in list(self._work):
            task.cancel()
        for task in list(self._work):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass
class _Reporter:
    """Batches output into chunks (a chunk may hold several lines) so a chatty test run costs one
    save per flush, not one per line; progress goes straight through."""

    orchestrator: EmbeddedOrchestrator
    work: AgentWork
    _pending: list[tuple[str, str]] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    _waiting: bool = False  # the flusher is still in its sleep, holding nothing

    async def progress(self, percent: int) -> None:
        if self.work.kind != "task":
            return
        svc, task_id = self.orchestrator.service, self.work.task_id
        await self.orchestrator.apply(
            self.work.project_name, lambda agg: svc.task_progress(agg, task_id, percent)
        )

    async def output(self, stream: str, text: str) -> None:
        if self.work.cycle_id is None or not text:
            return
        self._pending.append((stream, text))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        self._waiting = True
        try:
            await asyncio.sleep(OUTPUT_FLUSH_SECONDS)
        finally:
            self._waiting = False
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        chunks: list[tuple[str, str]] = []
        for stream, text in pending:
            if chunks and chunks[-1][0] == stream and len(chunks[-1][1]) + len(text) < MAX_CHUNK_CHARS:
                chunks[-1] = (stream, chunks[-1][1] + text)
            else:
                chunks.append((stream, text))
        if not chunks or self.work.cycle_id is None:
            return
        svc, cycle_id = self.orchestrator.service, self.work.cycle_id

        def record(agg: ProjectAggregate) -> CommandOutcome:
            outcome = CommandOutcome(result={"success": True})
            for stream, text in chunks:
                step = svc.record_test_output(agg, cycle_id, stream, text)
                outcome.events.extend(step.events)
                outcome.changed = outcome.changed or step.changed
            return outcome

        await self.orchestrator.apply(self.work.project_name, record)

    async def close(self) -> None:
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            # Only a flusher still asleep may be cancelled: one that is flushing has taken its
            # chunks out of `_pending`, and cancelling its save lost them (the end of a test
            # run's output, whenever the save was slow: test_e2e_monitoring under load).
            if self._waiting:
                flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        await self.flush()
