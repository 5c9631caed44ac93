"""Domain events. Field names and meanings are exactly the wire payloads of the WebSocket spec,
so the application layer can validate ``payload()`` straight into its pydantic event models.
Datetimes stay aware UTC datetimes here; nested objects are the models' ``to_dict()`` form."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class DomainEvent:
    event_name: ClassVar[str]

    def payload(self) -> dict[str, Any]:
        """The wire fields; optional fields that are unset are left out, as the spec's ``?`` allows."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class StateChange(DomainEvent):
    event_name: ClassVar[str] = "state_change"

    project_name: str
    old_state: str
    new_state: str
    timestamp: datetime
    triggered_by: str
    command: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TaskUpdate(DomainEvent):
    event_name: ClassVar[str] = "task_update"

    project_name: str
    task_id: str
    task_type: str
    status: str
    progress: int
    agent_type: str
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class ApprovalRequested(DomainEvent):
    event_name: ClassVar[str] = "approval_request"

    project_name: str
    request_id: str
    task: dict[str, Any]
    reason: str
    created_at: datetime
    retry_count: int
    timeout_at: datetime


@dataclass(frozen=True)
class ApprovalResolved(DomainEvent):
    event_name: ClassVar[str] = "approval_resolved"

    project_name: str
    request_id: str
    approved: bool
    resolved_by: str
    resolved_at: datetime
    comment: str | None = None


@dataclass(frozen=True)
class SprintProgress(DomainEvent):
    event_name: ClassVar[str] = "sprint_progress"

    project_name: str
    sprint_id: str
    total_stories: int
    completed_stories: int
    failed_stories: int
    in_progress_stories: int
    estimated_completion: datetime
    velocity: float


@dataclass(frozen=True)
class BacklogUpdated(DomainEvent):
    event_name: ClassVar[str] = "backlog_updated"

    project_name: str
    change_type: str  # added | removed | updated | reordered
    story_id: str
    story: dict[str, Any] | None = None
    old_position: int | None = None
    new_position: int | None = None


@dataclass(frozen=True)
class AgentActivity(DomainEvent):
    event_name: ClassVar[str] = "agent_activity"

    agent_type: str
    project_name: str
    action: str
    status: str  # started | completed | failed | paused
    timestamp: datetime
    task_id: str | None = None
    story_id: str | None = None
    duration: float | None = None  # ms
    metrics: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class TDDCycleStarted(DomainEvent):
    event_name: ClassVar[str] = "tdd_cycle_started"

    project_name: str
    cycle_id: str
    story_id: str
    started_by: str
    estimated_duration: float  # ms
    timestamp: datetime


@dataclass(frozen=True)
class TDDStateChange(DomainEvent):
    event_name: ClassVar[str] = "tdd_state_change"

    project_name: str
    cycle_id: str
    old_state: str
    new_state: str
    timestamp: datetime
    phase_duration: float | None = None  # ms
    test_results: list[dict[str, Any]] | None = None
    code_metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class TestOutput(DomainEvent):
    __test__: ClassVar[bool] = False
    event_name: ClassVar[str] = "test_output"

    project_name: str
    cycle_id: str
    output_type: str  # stdout | stderr | test_result
    content: str
    timestamp: datetime
    sequence_number: int
