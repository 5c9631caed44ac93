"""Domain data (domain page §3–§4) and the per-project aggregate.

Every model converts to and from plain JSON-able dicts, because the application layer stores
a project's whole aggregate as one JSON document and must restore it exactly after a restart.
Timestamps are stored as ISO 8601 UTC strings with milliseconds and ``Z`` (decisions §1); the
service truncates clock readings to milliseconds so the round trip is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from agent_portal.domain.workflow import WorkflowState

JSONDict = dict[str, Any]

HISTORY_LIMIT = 20
DEFAULT_PRIORITY = 3
MIN_PRIORITY = 1
MAX_PRIORITY = 5


def format_ts(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without timezone: {value!r}")
    return parsed.astimezone(UTC)


def _opt_ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _opt_parse(value: str | None) -> datetime | None:
    return None if value is None else parse_ts(value)


class OrchestrationMode(StrEnum):
    BLOCKING = "blocking"
    PARTIAL = "partial"
    AUTONOMOUS = "autonomous"


class AgentType(StrEnum):
    ORCHESTRATOR = "Orchestrator"
    DESIGN = "DesignAgent"
    CODE = "CodeAgent"
    QA = "QAAgent"
    DATA = "DataAgent"


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class EpicStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class StoryStatus(StrEnum):
    BACKLOG = "backlog"
    SPRINT = "sprint"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class SprintStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    COMPLETED = "completed"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class TDDState(StrEnum):
    DESIGN = "design"
    TEST_RED = "test_red"
    CODE_GREEN = "code_green"
    REFACTOR = "refactor"
    COMMIT = "commit"


class TestStatus(StrEnum):
    __test__ = False  # not a pytest class, despite the name

    NOT_RUN = "not_run"
    RED = "red"
    GREEN = "green"
    ERROR = "error"


class CIStatus(StrEnum):
    NOT_RUN = "not_run"
    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class TestFileStatus(StrEnum):
    __test__ = False

    DRAFT = "draft"
    COMMITTED = "committed"
    PASSING = "passing"
    INTEGRATED = "integrated"


@dataclass
class Epic:
    id: str
    title: str
    description: str
    created_at: datetime
    status: EpicStatus = EpicStatus.ACTIVE
    tdd_requirements: list[str] = field(default_factory=list)
    tdd_constraints: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "created_at": format_ts(self.created_at),
            "status": self.status.value,
            "tdd_requirements": list(self.tdd_requirements),
            "tdd_constraints": dict(self.tdd_constraints),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> Epic:
        return cls(
            id=data["id"],
            title=data["title"],
            description=data["description"],
            created_at=parse_ts(data["created_at"]),
            status=EpicStatus(data.get("status", "active")),
            tdd_requirements=list(data.get("tdd_requirements", [])),
            tdd_constraints=dict(data.get("tdd_constraints", {})),
        )


@dataclass
class Story:
    id: str
    title: str
    description: str
    created_at: datetime
    epic_id: str | None = None
    acceptance_criteria: list[str] = field(default_factory=list)
    priority: int = DEFAULT_PRIORITY
    status: StoryStatus = StoryStatus.BACKLOG
    sprint_id: str | None = None
    tdd_cycle_id: str | None = None
    # Free text in the reference: "not_started|red|green|refactor|complete", TDD state values, "aborted".
    test_status: str = "not_started"
    test_files: list[str] = field(default_factory=list)
    ci_status: CIStatus = CIStatus.NOT_RUN
    test_coverage: float = 0.0

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "epic_id": self.epic_id,
            "title": self.title,
            "description": self.description,
            "acceptance_criteria": list(self.acceptance_criteria),
            "priority": self.priority,
            "status": self.status.value,
            "sprint_id": self.sprint_id,
            "tdd_cycle_id": self.tdd_cycle_id,
            "test_status": self.test_status,
            "test_files": list(self.test_files),
            "ci_status": self.ci_status.value,
            "test_coverage": self.test_coverage,
            "created_at": format_ts(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> Story:
        return cls(
            id=data["id"],
            epic_id=data.get("epic_id"),
            title=data["title"],
            description=data["description"],
            acceptance_criteria=list(data.get("acceptance_criteria", [])),
            priority=int(data.get("priority", DEFAULT_PRIORITY)),
            status=StoryStatus(data.get("status", "backlog")),
            sprint_id=data.get("sprint_id"),
            tdd_cycle_id=data.get("tdd_cycle_id"),
            test_status=data.get("test_status", "not_started"),
            test_files=list(data.get("test_files", [])),
            ci_status=CIStatus(data.get("ci_status", "not_run")),
            test_coverage=float(data.get("test_coverage", 0.0)),
            created_at=parse_ts(data["created_at"]),
        )


@dataclass
class Sprint:
    id: str
    goal: str
    created_at: datetime
    story_ids: list[str] = field(default_factory=list)
    status: SprintStatus = SprintStatus.PLANNED
    start_date: datetime | None = None
    end_date: datetime | None = None
    retrospective: JSONDict | None = None
    active_tdd_cycles: list[str] = field(default_factory=list)
    tdd_metrics: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "goal": self.goal,
            "start_date": _opt_ts(self.start_date),
            "end_date": _opt_ts(self.end_date),
            "story_ids": list(self.story_ids),
            "status": self.status.value,
            "retrospective": None if self.retrospective is None else dict(self.retrospective),
            "created_at": format_ts(self.created_at),
            "active_tdd_cycles": list(self.active_tdd_cycles),
            "tdd_metrics": dict(self.tdd_metrics),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> Sprint:
        retro = data.get("retrospective")
        return cls(
            id=data["id"],
            goal=data["goal"],
            start_date=_opt_parse(data.get("start_date")),
            end_date=_opt_parse(data.get("end_date")),
            story_ids=list(data.get("story_ids", [])),
            status=SprintStatus(data.get("status", "planned")),
            retrospective=None if retro is None else dict(retro),
            created_at=parse_ts(data["created_at"]),
            active_tdd_cycles=list(data.get("active_tdd_cycles", [])),
            tdd_metrics=dict(data.get("tdd_metrics", {})),
        )


@dataclass
class Task:
    """One unit of agent work. ``task_type`` names what it is for (a TDD phase value,
    ``"epic_decomposition"``, ``"escalation"``); ``dispatched`` records that it was handed on
    (to an approval or to an agent), so a restart knows what was in flight."""

    id: str
    agent_type: AgentType
    command: str
    created_at: datetime
    task_type: str
    context: JSONDict = field(default_factory=dict)
    status: TaskStatus = TaskStatus.PENDING
    retry_count: int = 0
    max_retries: int = 3
    progress: int = 0
    story_id: str | None = None
    cycle_id: str | None = None
    sprint_id: str | None = None
    phase: TDDState | None = None
    dispatched: bool = False
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    output: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_TASK_STATUSES

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "agent_type": self.agent_type.value,
            "command": self.command,
            "context": dict(self.context),
            "status": self.status.value,
            "retry_count": self.retry_count,
            "max_retries": self.max_retries,
            "created_at": format_ts(self.created_at),
            "task_type": self.task_type,
            "progress": self.progress,
            "story_id": self.story_id,
            "cycle_id": self.cycle_id,
            "sprint_id": self.sprint_id,
            "phase": None if self.phase is None else self.phase.value,
            "dispatched": self.dispatched,
            "started_at": _opt_ts(self.started_at),
            "completed_at": _opt_ts(self.completed_at),
            "error": self.error,
            "output": self.output,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> Task:
        phase = data.get("phase")
        return cls(
            id=data["id"],
            agent_type=AgentType(data["agent_type"]),
            command=data["command"],
            context=dict(data.get("context", {})),
            status=TaskStatus(data.get("status", "pending")),
            retry_count=int(data.get("retry_count", 0)),
            max_retries=int(data.get("max_retries", 3)),
            created_at=parse_ts(data["created_at"]),
            task_type=data["task_type"],
            progress=int(data.get("progress", 0)),
            story_id=data.get("story_id"),
            cycle_id=data.get("cycle_id"),
            sprint_id=data.get("sprint_id"),
            phase=None if phase is None else TDDState(phase),
            dispatched=bool(data.get("dispatched", False)),
            started_at=_opt_parse(data.get("started_at")),
            completed_at=_opt_parse(data.get("completed_at")),
            error=data.get("error"),
            output=data.get("output"),
        )


@dataclass
class ApprovalRequest:
    id: str
    project_name: str
    task: Task
    reason: str
    created_at: datetime
    timeout_at: datetime
    retry_count: int = 0
    status: ApprovalStatus = ApprovalStatus.PENDING
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    comment: str | None = None

    @property
    def is_pending(self) -> bool:
        return self.status is ApprovalStatus.PENDING

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "project_name": self.project_name,
            "task": self.task.to_dict(),
            "reason": self.reason,
            "created_at": format_ts(self.created_at),
            "timeout_at": format_ts(self.timeout_at),
            "retry_count": self.retry_count,
            "status": self.status.value,
            "resolved_by": self.resolved_by,
            "resolved_at": _opt_ts(self.resolved_at),
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> ApprovalRequest:
        return cls(
            id=data["id"],
            project_name=data["project_name"],
            task=Task.from_dict(data["task"]),
            reason=data["reason"],
            created_at=parse_ts(data["created_at"]),
            timeout_at=parse_ts(data["timeout_at"]),
            retry_count=int(data.get("retry_count", 0)),
            status=ApprovalStatus(data.get("status", "pending")),
            resolved_by=data.get("resolved_by"),
            resolved_at=_opt_parse(data.get("resolved_at")),
            comment=data.get("comment"),
        )


@dataclass
class TestResult:
    """``execution_time`` is in milliseconds, as every duration on the wire (decisions §1)."""

    __test__ = False

    id: str
    test_file: str
    test_name: str
    status: TestStatus
    timestamp: datetime
    output: str = ""
    error_message: str | None = None
    execution_time: float = 0.0

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "test_file": self.test_file,
            "test_name": self.test_name,
            "status": self.status.value,
            "output": self.output,
            "error_message": self.error_message,
            "execution_time": self.execution_time,
            "timestamp": format_ts(self.timestamp),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> TestResult:
        return cls(
            id=data["id"],
            test_file=data["test_file"],
            test_name=data["test_name"],
            status=TestStatus(data["status"]),
            output=data.get("output", ""),
            error_message=data.get("error_message"),
            execution_time=float(data.get("execution_time", 0.0)),
            timestamp=parse_ts(data["timestamp"]),
        )


@dataclass
class TestFile:
    __test__ = False

    id: str
    file_path: str
    relative_path: str
    story_id: str
    task_id: str
    created_at: datetime
    status: TestFileStatus = TestFileStatus.DRAFT
    ci_status: CIStatus = CIStatus.NOT_RUN
    test_count: int = 0
    passing_tests: int = 0
    failing_tests: int = 0
    coverage_percentage: float = 0.0
    committed_at: datetime | None = None

    @property
    def is_committed(self) -> bool:
        return self.status is not TestFileStatus.DRAFT

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "file_path": self.file_path,
            "relative_path": self.relative_path,
            "story_id": self.story_id,
            "task_id": self.task_id,
            "status": self.status.value,
            "ci_status": self.ci_status.value,
            "test_count": self.test_count,
            "passing_tests": self.passing_tests,
            "failing_tests": self.failing_tests,
            "coverage_percentage": self.coverage_percentage,
            "created_at": format_ts(self.created_at),
            "committed_at": _opt_ts(self.committed_at),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> TestFile:
        return cls(
            id=data["id"],
            file_path=data["file_path"],
            relative_path=data["relative_path"],
            story_id=data["story_id"],
            task_id=data["task_id"],
            status=TestFileStatus(data.get("status", "draft")),
            ci_status=CIStatus(data.get("ci_status", "not_run")),
            test_count=int(data.get("test_count", 0)),
            passing_tests=int(data.get("passing_tests", 0)),
            failing_tests=int(data.get("failing_tests", 0)),
            coverage_percentage=float(data.get("coverage_percentage", 0.0)),
            created_at=parse_ts(data["created_at"]),
            committed_at=_opt_parse(data.get("committed_at")),
        )


@dataclass
class TDDTask:
    id: str
    cycle_id: str
    description: str
    started_at: datetime
    acceptance_criteria: list[str] = field(default_factory=list)
    current_state: TDDState = TDDState.DESIGN
    test_files: list[str] = field(default_factory=list)
    test_file_objects: list[TestFile] = field(default_factory=list)
    source_files: list[str] = field(default_factory=list)
    test_results: list[TestResult] = field(default_factory=list)
    design_notes: str = ""
    implementation_notes: str = ""
    refactor_notes: str = ""
    ci_status: CIStatus = CIStatus.NOT_RUN
    test_coverage: float = 0.0
    completed_at: datetime | None = None

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None

    def latest_test_results(self) -> list[TestResult]:
        latest: dict[tuple[str, str], TestResult] = {}
        for result in self.test_results:
            key = (result.test_file, result.test_name)
            if key not in latest or result.timestamp >= latest[key].timestamp:
                latest[key] = result
        return list(latest.values())

    def has_passing_tests(self) -> bool:
        latest = self.latest_test_results()
        return bool(latest) and all(r.status is TestStatus.GREEN for r in latest)

    def has_failing_tests(self) -> bool:
        return any(r.status is TestStatus.RED for r in self.latest_test_results())

    def committed_test_files(self) -> list[TestFile]:
        return [tf for tf in self.test_file_objects if tf.is_committed]

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "cycle_id": self.cycle_id,
            "description": self.description,
            "acceptance_criteria": list(self.acceptance_criteria),
            "current_state": self.current_state.value,
            "test_files": list(self.test_files),
            "test_file_objects": [tf.to_dict() for tf in self.test_file_objects],
            "source_files": list(self.source_files),
            "test_results": [r.to_dict() for r in self.test_results],
            "design_notes": self.design_notes,
            "implementation_notes": self.implementation_notes,
            "refactor_notes": self.refactor_notes,
            "ci_status": self.ci_status.value,
            "test_coverage": self.test_coverage,
            "started_at": format_ts(self.started_at),
            "completed_at": _opt_ts(self.completed_at),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> TDDTask:
        return cls(
            id=data["id"],
            cycle_id=data["cycle_id"],
            description=data["description"],
            acceptance_criteria=list(data.get("acceptance_criteria", [])),
            current_state=TDDState(data.get("current_state", "design")),
            test_files=list(data.get("test_files", [])),
            test_file_objects=[TestFile.from_dict(tf) for tf in data.get("test_file_objects", [])],
            source_files=list(data.get("source_files", [])),
            test_results=[TestResult.from_dict(r) for r in data.get("test_results", [])],
            design_notes=data.get("design_notes", ""),
            implementation_notes=data.get("implementation_notes", ""),
            refactor_notes=data.get("refactor_notes", ""),
            ci_status=CIStatus(data.get("ci_status", "not_run")),
            test_coverage=float(data.get("test_coverage", 0.0)),
            started_at=parse_ts(data["started_at"]),
            completed_at=_opt_parse(data.get("completed_at")),
        )


CYCLE_LOG_LIMIT = 50


@dataclass
class TDDCycle:
    """One story's TDD cycle. Beyond the reference fields it keeps when the current phase began
    (for ``phase_duration``), the last ``test_output`` sequence number handed out (gapless per
    cycle, decisions §5) and a short activity log for ``/tdd logs``."""

    id: str
    story_id: str
    started_at: datetime
    current_state: TDDState = TDDState.DESIGN
    current_task_id: str | None = None
    tasks: list[TDDTask] = field(default_factory=list)
    completed_at: datetime | None = None
    total_test_runs: int = 0
    total_refactors: int = 0
    total_commits: int = 0
    ci_status: CIStatus = CIStatus.NOT_RUN
    overall_test_coverage: float = 0.0
    phase_started_at: datetime | None = None
    aborted: bool = False
    output_sequence: int = 0
    total_events: int = 0
    log: list[str] = field(default_factory=list)
    last_activity: datetime | None = None

    @property
    def is_complete(self) -> bool:
        return self.completed_at is not None

    def current_task(self) -> TDDTask | None:
        if self.current_task_id is None:
            return None
        return next((t for t in self.tasks if t.id == self.current_task_id), None)

    def add_task(self, task: TDDTask) -> None:
        task.cycle_id = self.id
        self.tasks.append(task)

    def start_task(self, task_id: str) -> None:
        task = next(t for t in self.tasks if t.id == task_id)
        self.current_task_id = task.id
        self.current_state = task.current_state

    def complete_current_task(self, now: datetime) -> bool:
        task = self.current_task()
        if task is None:
            return False
        task.completed_at = now
        self.current_task_id = None
        if all(t.is_complete for t in self.tasks):
            self.completed_at = now
            self.current_state = TDDState.COMMIT
        else:
            self.current_state = TDDState.DESIGN
        return True

    def record(self, now: datetime, entry: str) -> None:
        self.total_events += 1
        self.last_activity = now
        self.log.append(f"{format_ts(now)} {entry}")
        del self.log[:-CYCLE_LOG_LIMIT]

    def progress_summary(self) -> JSONDict:
        completed = sum(1 for t in self.tasks if t.is_complete)
        return {
            "cycle_id": self.id,
            "story_id": self.story_id,
            "current_state": self.current_state.value,
            "current_task_id": self.current_task_id,
            "progress": f"{completed}/{len(self.tasks)}",
            "completed_tasks": completed,
            "total_tasks": len(self.tasks),
            "total_test_runs": self.total_test_runs,
            "total_refactors": self.total_refactors,
            "total_commits": self.total_commits,
            "ci_status": self.ci_status.value,
            "overall_test_coverage": self.overall_test_coverage,
            "is_complete": self.is_complete,
            "started_at": format_ts(self.started_at),
            "completed_at": _opt_ts(self.completed_at),
        }

    def to_dict(self) -> JSONDict:
        return {
            "id": self.id,
            "story_id": self.story_id,
            "current_state": self.current_state.value,
            "current_task_id": self.current_task_id,
            "tasks": [t.to_dict() for t in self.tasks],
            "started_at": format_ts(self.started_at),
            "completed_at": _opt_ts(self.completed_at),
            "total_test_runs": self.total_test_runs,
            "total_refactors": self.total_refactors,
            "total_commits": self.total_commits,
            "ci_status": self.ci_status.value,
            "overall_test_coverage": self.overall_test_coverage,
            "phase_started_at": _opt_ts(self.phase_started_at),
            "aborted": self.aborted,
            "output_sequence": self.output_sequence,
            "total_events": self.total_events,
            "log": list(self.log),
            "last_activity": _opt_ts(self.last_activity),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> TDDCycle:
        return cls(
            id=data["id"],
            story_id=data["story_id"],
            current_state=TDDState(data.get("current_state", "design")),
            current_task_id=data.get("current_task_id"),
            tasks=[TDDTask.from_dict(t) for t in data.get("tasks", [])],
            started_at=parse_ts(data["started_at"]),
            completed_at=_opt_parse(data.get("completed_at")),
            total_test_runs=int(data.get("total_test_runs", 0)),
            total_refactors=int(data.get("total_refactors", 0)),
            total_commits=int(data.get("total_commits", 0)),
            ci_status=CIStatus(data.get("ci_status", "not_run")),
            overall_test_coverage=float(data.get("overall_test_coverage", 0.0)),
            phase_started_at=_opt_parse(data.get("phase_started_at")),
            aborted=bool(data.get("aborted", False)),
            output_sequence=int(data.get("output_sequence", 0)),
            total_events=int(data.get("total_events", 0)),
            log=list(data.get("log", [])),
            last_activity=_opt_parse(data.get("last_activity")),
        )


@dataclass(frozen=True)
class CodeMetrics:
    """Decisions §5: numbers, percentages 0–100."""

    coverage: float = 0.0
    complexity: float = 0.0
    duplication: float = 0.0
    maintainability: float = 0.0

    def to_dict(self) -> JSONDict:
        return {
            "coverage": self.coverage,
            "complexity": self.complexity,
            "duplication": self.duplication,
            "maintainability": self.maintainability,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> CodeMetrics:
        return cls(
            coverage=float(data.get("coverage", 0.0)),
            complexity=float(data.get("complexity", 0.0)),
            duplication=float(data.get("duplication", 0.0)),
            maintainability=float(data.get("maintainability", 0.0)),
        )


@dataclass
class AgentMetrics:
    """Per agent type and project. The domain counts tasks; cpu/memory/uptime are runtime
    measurements the application layer may fill in before publishing."""

    total_tasks: int = 0
    successful_tasks: int = 0
    failed_tasks: int = 0
    average_execution_time: float = 0.0  # ms
    last_task_time: datetime | None = None
    cpu_usage: float = 0.0
    memory_usage: float = 0.0
    error_rate: float = 0.0  # percent of finished attempts that failed
    uptime: float = 0.0  # seconds

    @property
    def success_rate(self) -> float:
        return 0.0 if self.total_tasks == 0 else 100.0 * self.successful_tasks / self.total_tasks

    @property
    def load_score(self) -> float:
        # The reference names this field without a formula we could find; a 0–100 blend of
        # resource use and failure rate is enough to rank agents in a dashboard.
        return round(min(100.0, 0.4 * self.cpu_usage + 0.4 * self.memory_usage + 0.2 * self.error_rate), 2)

    def record(self, success: bool, duration_ms: float, now: datetime) -> None:
        previous_total = self.total_tasks
        self.total_tasks += 1
        if success:
            self.successful_tasks += 1
        else:
            self.failed_tasks += 1
        self.average_execution_time = (
            self.average_execution_time * previous_total + duration_ms
        ) / self.total_tasks
        self.last_task_time = now
        self.error_rate = 100.0 * self.failed_tasks / self.total_tasks

    def to_dict(self) -> JSONDict:
        return {
            "total_tasks": self.total_tasks,
            "successful_tasks": self.successful_tasks,
            "failed_tasks": self.failed_tasks,
            "average_execution_time": self.average_execution_time,
            "last_task_time": _opt_ts(self.last_task_time),
            "cpu_usage": self.cpu_usage,
            "memory_usage": self.memory_usage,
            "error_rate": self.error_rate,
            "uptime": self.uptime,
            "success_rate": self.success_rate,
            "load_score": self.load_score,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> AgentMetrics:
        return cls(
            total_tasks=int(data.get("total_tasks", 0)),
            successful_tasks=int(data.get("successful_tasks", 0)),
            failed_tasks=int(data.get("failed_tasks", 0)),
            average_execution_time=float(data.get("average_execution_time", 0.0)),
            last_task_time=_opt_parse(data.get("last_task_time")),
            cpu_usage=float(data.get("cpu_usage", 0.0)),
            memory_usage=float(data.get("memory_usage", 0.0)),
            error_rate=float(data.get("error_rate", 0.0)),
            uptime=float(data.get("uptime", 0.0)),
        )


@dataclass(frozen=True)
class AgentWork:
    """What the application layer must run. ``kind`` is ``"task"`` (report back through the
    service's ``task_*`` methods with ``task_id``) or ``"run_tests"`` (run the project's test
    command and report through ``record_test_results``)."""

    project_name: str
    task_id: str
    agent_type: AgentType
    command: str
    kind: str = "task"
    phase: TDDState | None = None
    story_id: str | None = None
    cycle_id: str | None = None
    attempt: int = 1
    dry_run: bool = False
    context: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        return {
            "project_name": self.project_name,
            "task_id": self.task_id,
            "agent_type": self.agent_type.value,
            "command": self.command,
            "kind": self.kind,
            "phase": None if self.phase is None else self.phase.value,
            "story_id": self.story_id,
            "cycle_id": self.cycle_id,
            "attempt": self.attempt,
            "dry_run": self.dry_run,
            "context": dict(self.context),
        }


@dataclass
class ProjectSettings:
    approval_timeout_seconds: int = 30 * 60
    max_retries: int = 3
    max_concurrent_cycles: int = 3
    sprint_capacity: int = 5
    auto_decompose_epics: bool = True

    def to_dict(self) -> JSONDict:
        return {
            "approval_timeout_seconds": self.approval_timeout_seconds,
            "max_retries": self.max_retries,
            "max_concurrent_cycles": self.max_concurrent_cycles,
            "sprint_capacity": self.sprint_capacity,
            "auto_decompose_epics": self.auto_decompose_epics,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> ProjectSettings:
        defaults = cls()
        return cls(
            approval_timeout_seconds=int(
                data.get("approval_timeout_seconds", defaults.approval_timeout_seconds)
            ),
            max_retries=int(data.get("max_retries", defaults.max_retries)),
            max_concurrent_cycles=int(data.get("max_concurrent_cycles", defaults.max_concurrent_cycles)),
            sprint_capacity=int(data.get("sprint_capacity", defaults.sprint_capacity)),
            auto_decompose_epics=bool(data.get("auto_decompose_epics", defaults.auto_decompose_epics)),
        )


@dataclass(frozen=True)
class TransitionRecord:
    timestamp: datetime
    from_state: WorkflowState
    to_state: WorkflowState
    command: str

    def to_dict(self) -> JSONDict:
        return {
            "timestamp": format_ts(self.timestamp),
            "from": self.from_state.value,
            "to": self.to_state.value,
            "command": self.command,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> TransitionRecord:
        return cls(
            timestamp=parse_ts(data["timestamp"]),
            from_state=WorkflowState(data["from"]),
            to_state=WorkflowState(data["to"]),
            command=data["command"],
        )


@dataclass
class ProjectAggregate:
    """One project's whole domain state. Dicts keep insertion order, which is creation order.
    ``backlog`` is the product backlog: ids of stories with status ``backlog``, kept sorted by
    priority (ties in arrival order); its indexes are the ``backlog_updated`` positions."""

    name: str
    state: WorkflowState = WorkflowState.IDLE
    mode: OrchestrationMode = OrchestrationMode.BLOCKING
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    history: list[TransitionRecord] = field(default_factory=list)
    epics: dict[str, Epic] = field(default_factory=dict)
    stories: dict[str, Story] = field(default_factory=dict)
    backlog: list[str] = field(default_factory=list)
    sprints: dict[str, Sprint] = field(default_factory=dict)
    current_sprint_id: str | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    approvals: dict[str, ApprovalRequest] = field(default_factory=dict)
    tdd_cycles: dict[str, TDDCycle] = field(default_factory=dict)
    active_cycle_id: str | None = None
    paused: bool = False
    agent_metrics: dict[str, AgentMetrics] = field(default_factory=dict)
    last_activity: datetime | None = None

    @property
    def current_sprint(self) -> Sprint | None:
        return None if self.current_sprint_id is None else self.sprints.get(self.current_sprint_id)

    def pending_approvals(self) -> list[ApprovalRequest]:
        return [a for a in self.approvals.values() if a.is_pending]

    def active_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if not t.is_terminal]

    def active_cycles(self) -> list[TDDCycle]:
        return [c for c in self.tdd_cycles.values() if not c.is_complete]

    def sprint_tasks(self, sprint_id: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.sprint_id == sprint_id]

    def record_transition(self, record: TransitionRecord) -> None:
        self.history.append(record)
        del self.history[:-HISTORY_LIMIT]

    def to_dict(self) -> JSONDict:
        return {
            "name": self.name,
            "state": self.state.value,
            "mode": self.mode.value,
            "settings": self.settings.to_dict(),
            "history": [h.to_dict() for h in self.history],
            "epics": [e.to_dict() for e in self.epics.values()],
            "stories": [s.to_dict() for s in self.stories.values()],
            "backlog": list(self.backlog),
            "sprints": [s.to_dict() for s in self.sprints.values()],
            "current_sprint_id": self.current_sprint_id,
            "tasks": [t.to_dict() for t in self.tasks.values()],
            "approvals": [a.to_dict() for a in self.approvals.values()],
            "tdd_cycles": [c.to_dict() for c in self.tdd_cycles.values()],
            "active_cycle_id": self.active_cycle_id,
            "paused": self.paused,
            "agent_metrics": {k: m.to_dict() for k, m in self.agent_metrics.items()},
            "last_activity": _opt_ts(self.last_activity),
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> ProjectAggregate:
        epics = [Epic.from_dict(e) for e in data.get("epics", [])]
        stories = [Story.from_dict(s) for s in data.get("stories", [])]
        sprints = [Sprint.from_dict(s) for s in data.get("sprints", [])]
        tasks = [Task.from_dict(t) for t in data.get("tasks", [])]
        approvals = [ApprovalRequest.from_dict(a) for a in data.get("approvals", [])]
        cycles = [TDDCycle.from_dict(c) for c in data.get("tdd_cycles", [])]
        return cls(
            name=data["name"],
            state=WorkflowState(data.get("state", "IDLE")),
            mode=OrchestrationMode(data.get("mode", "blocking")),
            settings=ProjectSettings.from_dict(data.get("settings", {})),
            history=[TransitionRecord.from_dict(h) for h in data.get("history", [])],
            epics={e.id: e for e in epics},
            stories={s.id: s for s in stories},
            backlog=list(data.get("backlog", [])),
            sprints={s.id: s for s in sprints},
            current_sprint_id=data.get("current_sprint_id"),
            tasks={t.id: t for t in tasks},
            approvals={a.id: a for a in approvals},
            tdd_cycles={c.id: c for c in cycles},
            active_cycle_id=data.get("active_cycle_id"),
            paused=bool(data.get("paused", False)),
            agent_metrics={k: AgentMetrics.from_dict(m) for k, m in data.get("agent_metrics", {}).items()},
            last_activity=_opt_parse(data.get("last_activity")),
        )
