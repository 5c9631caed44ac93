"""Fakes for the domain ports, shared by the domain unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent_portal.domain.events import DomainEvent
from agent_portal.domain.models import AgentWork, CodeMetrics, ProjectAggregate, TestResult, TestStatus
from agent_portal.domain.service import OrchestratorService, new_project

START = datetime(2026, 11, 25, 20, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


class SequentialIds:
    def __init__(self) -> None:
        self.count = 0

    def new(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count:08x}"


def make_service() -> tuple[OrchestratorService, FakeClock]:
    clock = FakeClock()
    return OrchestratorService(clock, SequentialIds()), clock


def make_project(name: str = "demo") -> ProjectAggregate:
    return new_project(name)


def results_for(phase: str | None, n: int, now: datetime) -> list[TestResult]:
    """What a well-behaved agent reports: failing tests when writing them, passing afterwards."""
    if phase == "test_red":
        status = TestStatus.RED
    elif phase in ("code_green", "refactor"):
        status = TestStatus.GREEN
    else:
        return []
    return [
        TestResult(
            id=f"test-{n:04d}{i}",
            test_file="tests/test_login.py",
            test_name=f"test_{i}",
            status=status,
            timestamp=now,
            execution_time=12.5,
        )
        for i in range(2)
    ]


def play(
    service: OrchestratorService,
    project: ProjectAggregate,
    clock: FakeClock,
    work: list[AgentWork],
    *,
    approve: bool = True,
    limit: int = 500,
) -> list[DomainEvent]:
    """Run agent work to exhaustion like a deterministic demo backend, approving requests as a
    member would. Returns every event produced on the way."""
    events: list[DomainEvent] = []
    queue = list(work)
    n = 0
    while limit > 0:
        limit -= 1
        if not queue:
            if not approve or not project.pending_approvals():
                break
            approval = project.pending_approvals()[0]
            clock.advance(5)
            out = service.resolve_approval(project, approval.id, True, "alice")
            events += out.events
            queue += out.work
            continue
        item = queue.pop(0)
        n += 1
        clock.advance(10)
        out = service.task_started(project, item.task_id)
        events += out.events
        clock.advance(20)
        events += service.task_progress(project, item.task_id, 50).events
        clock.advance(30)
        phase = None if item.phase is None else item.phase.value
        metrics = CodeMetrics(coverage=85.0, complexity=3.0, duplication=1.0, maintainability=80.0)
        out = service.task_succeeded(
            project,
            item.task_id,
            output="ok",
            test_results=results_for(phase, n, clock.now()),
            metrics=metrics if phase else None,
        )
        events += out.events
        queue += out.work
    return events
