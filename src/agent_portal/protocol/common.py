"""Shared wire types: the base model, timestamps, enums and the nested records events carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema


def _as_utc(value: datetime) -> datetime:
    # Naive datetimes are a bug source across nodes; the wire is UTC only (decisions §1).
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and `Z`, the only date form on the wire."""
    # isoformat of a UTC datetime ends in "+00:00" (23 characters before it); strftime and a format
    # took 1.8 % of the product bench's CPU (docs/performance.md), this a third of that. It also
    # pads years before 1000 to four digits, as ISO 8601 wants and glibc's %Y does not.
    return _as_utc(value).isoformat(timespec="milliseconds")[:23] + "Z"


Timestamp = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are refused in both directions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready payload: timestamps as strings, unset optionals left out."""
        return self.model_dump(mode="json", exclude_none=True)


ProjectName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Identifier = Annotated[str, Field(min_length=1, max_length=200)]

WorkflowState = Literal[
    "IDLE", "BACKLOG_READY", "SPRINT_PLANNED", "SPRINT_ACTIVE", "SPRINT_PAUSED", "SPRINT_REVIEW", "BLOCKED"
]
TDDState = Literal["design", "test_red", "code_green", "refactor", "commit"]
TaskStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled"]
TestStatus = Literal["not_run", "red", "green", "error"]
StoryStatus = Literal["backlog", "sprint", "in_progress", "done"]
CIStatus = Literal["not_run", "pending", "running", "passed", "failed", "error"]
ErrorType = Literal["connection", "authentication", "validation", "server", "network"]
Role = Literal["admin", "member", "viewer", "orchestrator"]
ConfigType = Literal["agent", "system", "security", "user"]


class Task(WireModel):
    id: str
    agent_type: str
    command: str
    context: dict[str, Any] = Field(default_factory=dict)
    status: TaskStatus = "pending"
    retry_count: int = Field(default=0, ge=0)
    max_retries: int = Field(default=3, ge=0)
    created_at: Timestamp
    # Beyond the reference's Task: what a page needs to show the task without another lookup.
    task_type: str | None = None
    progress: int | None = Field(default=None, ge=0, le=100)
    story_id: str | None = None
    cycle_id: str | None = None
    sprint_id: str | None = None
    phase: TDDState | None = None
    dispatched: bool | None = None
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    error: str | None = None
    output: str | None = None


class Story(WireModel):
    id: str
    epic_id: str | None = None
    title: str
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    priority: int = Field(default=3, ge=1, le=5)
    status: StoryStatus = "backlog"
    sprint_id: str | None = None
    tdd_cycle_id: str | None = None
    test_status: str = "not_started"
    test_files: list[str] = Field(default_factory=list)
    ci_status: CIStatus = "not_run"
    test_coverage: float = 0.0
    created_at: Timestamp


class TestResult(WireModel):
    __test__ = False  # not a pytest class, despite the name

    id: str
    test_file: str
    test_name: str
    status: TestStatus
    output: str = ""
    error_message: str | None = None
    execution_time: float = Field(ge=0, description="milliseconds (decisions §1)")
    timestamp: Timestamp


class CodeMetrics(WireModel):
    coverage: float = Field(ge=0, le=100)
    complexity: float = Field(ge=0)
    duplication: float = Field(ge=0, le=100)
    maintainability: float = Field(ge=0, le=100)


class AgentMetrics(WireModel):
    total_tasks: int = Field(ge=0)
    successful_tasks: int = Field(ge=0)
    failed_tasks: int = Field(ge=0)
    average_execution_time: float = Field(ge=0)
    last_task_time: Timestamp | None = None
    cpu_usage: float = Field(ge=0)
    memory_usage: float = Field(ge=0)
    error_rate: float = Field(ge=0)
    uptime: float = Field(ge=0)
    success_rate: float | None = Field(default=None, ge=0, le=100)
    load_score: float | None = None


class FileAttachment(WireModel):
    id: str
    name: str
    size: int = Field(ge=0, le=10_485_760)
    type: str
    url: str


class Reaction(WireModel):
    emoji: str
    count: int = Field(ge=0)
    user_ids: list[str]


class EmbedField(WireModel):
    name: str
    value: str
    inline: bool = False


class EmbedData(WireModel):
    title: str
    description: str | None = None
    color: str | None = None
    fields: list[EmbedField] = Field(default_factory=list)
    footer: str | None = None


class ErrorDetail(WireModel):
    path: str
    message: str


class WebSocketError(WireModel):
    type: ErrorType
    message: str
    code: str | None = None
    details: Any = None
    timestamp: Timestamp


class Ack(WireModel):
    """The reply to every client event that asked for an acknowledgement (decisions §3)."""

    ok: bool
    data: Any = None
    error: WebSocketError | None = None
