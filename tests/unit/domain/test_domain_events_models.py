"""Event field names against the WebSocket spec, and JSON round trips of every model."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent_portal.domain.events import (
    AgentActivity,
    ApprovalRequested,
    ApprovalResolved,
    BacklogUpdated,
    DomainEvent,
    SprintProgress,
    StateChange,
    TaskUpdate,
    TDDCycleStarted,
    TDDStateChange,
    TestOutput,
)
from agent_portal.domain.models import (
    AgentMetrics,
    AgentType,
    ApprovalRequest,
    ApprovalStatus,
    CodeMetrics,
    Epic,
    ProjectAggregate,
    ProjectSettings,
    Sprint,
    SprintStatus,
    Story,
    Task,
    TaskStatus,
    TDDCycle,
    TDDState,
    TDDTask,
    TestFile,
    TestFileStatus,
    TestResult,
    TestStatus,
    format_ts,
    parse_ts,
)

NOW = datetime(2026, 11, 25, 20, 0, 0, 123000, tzinfo=UTC)

# Written out from websocket-api-specification.md: (event name, required fields, optional fields).
SPEC: dict[type[DomainEvent], tuple[str, set[str], set[str]]] = {
    StateChange: (
        "state_change",
        {"project_name", "old_state", "new_state", "timestamp", "triggered_by"},
        {"command", "reason"},
    ),
    TaskUpdate: (
        "task_update",
        {"project_name", "task_id", "task_type", "status", "progress", "agent_type"},
        {"started_at", "completed_at", "error", "metadata"},
    ),
    ApprovalRequested: (
        "approval_request",
        {"project_name", "request_id", "task", "reason", "created_at", "retry_count", "timeout_at"},
        set(),
    ),
    ApprovalResolved: (
        "approval_resolved",
        {"project_name", "request_id", "approved", "resolved_by", "resolved_at"},
        {"comment"},
    ),
    SprintProgress: (
        "sprint_progress",
        {
            "project_name",
            "sprint_id",
            "total_stories",
            "completed_stories",
            "failed_stories",
            "in_progress_stories",
            "estimated_completion",
            "velocity",
        },
        set(),
    ),
    BacklogUpdated: (
        "backlog_updated",
        {"project_name", "change_type", "story_id"},
        {"story", "old_position", "new_position"},
    ),
    AgentActivity: (
        "agent_activity",
        {"agent_type", "project_name", "action", "status", "timestamp"},
        {"task_id", "story_id", "duration", "metrics", "error"},
    ),
    TDDCycleStarted: (
        "tdd_cycle_started",
        {"project_name", "cycle_id", "story_id", "started_by", "estimated_duration", "timestamp"},
        set(),
    ),
    TDDStateChange: (
        "tdd_state_change",
        {"project_name", "cycle_id", "old_state", "new_state", "timestamp"},
        {"phase_duration", "test_results", "code_metrics"},
    ),
    TestOutput: (
        "test_output",
        {"project_name", "cycle_id", "output_type", "content", "timestamp", "sequence_number"},
        set(),
    ),
}


@pytest.mark.parametrize("event_type", list(SPEC), ids=lambda t: t.__name__)
def test_event_fields_match_spec(event_type: type[DomainEvent]) -> None:
    name, required, optional = SPEC[event_type]
    assert event_type.event_name == name
    fields = {f.name: f for f in dataclasses.fields(event_type)}
    assert set(fields) == required | optional
    for field_name in optional:
        assert fields[field_name].default is None


def test_payload_omits_unset_optionals() -> None:
    event = StateChange(
        project_name="p", old_state="IDLE", new_state="BACKLOG_READY", timestamp=NOW, triggered_by="u"
    )
    assert event.payload() == {
        "project_name": "p",
        "old_state": "IDLE",
        "new_state": "BACKLOG_READY",
        "timestamp": NOW,
        "triggered_by": "u",
    }


def test_timestamps_are_milliseconds_with_z() -> None:
    assert format_ts(NOW) == "2026-11-25T20:00:00.123Z"
    assert parse_ts("2026-11-25T20:00:00.123Z") == NOW
    assert format_ts(NOW.astimezone(timezone(timedelta(hours=2)))) == ("2026-11-25T20:00:00.123Z")
    with pytest.raises(ValueError):
        parse_ts("2026-11-25T20:00:00")


def _test_result() -> TestResult:
    return TestResult(
        id="test-1",
        test_file="t.py",
        test_name="t",
        status=TestStatus.RED,
        timestamp=NOW,
        output="E",
        error_message="boom",
        execution_time=3.5,
    )


def _task() -> Task:
    return Task(
        id="task-1",
        agent_type=AgentType.QA,
        command="c",
        created_at=NOW,
        task_type="test_red",
        context={"k": [1, 2]},
        status=TaskStatus.IN_PROGRESS,
        retry_count=2,
        progress=40,
        story_id="story-1",
        cycle_id="tdd-cycle-1",
        sprint_id="sprint-1",
        phase=TDDState.TEST_RED,
        dispatched=True,
        started_at=NOW,
        completed_at=NOW,
        error="e",
        output="o",
    )


def _cycle() -> TDDCycle:
    tdd_task = TDDTask(
        id="tdd-task-1",
        cycle_id="tdd-cycle-1",
        description="d",
        started_at=NOW,
        acceptance_criteria=["a"],
        current_state=TDDState.CODE_GREEN,
        test_files=["t.py"],
        test_file_objects=[
            TestFile(
                id="testfile-1",
                file_path="/p/t.py",
                relative_path="t.py",
                story_id="story-1",
                task_id="tdd-task-1",
                created_at=NOW,
                status=TestFileStatus.COMMITTED,
                committed_at=NOW,
            )
        ],
        test_results=[_test_result()],
        completed_at=NOW,
    )
    cycle = TDDCycle(
        id="tdd-cycle-1",
        story_id="story-1",
        started_at=NOW,
        current_state=TDDState.CODE_GREEN,
        tasks=[tdd_task],
        total_test_runs=3,
        phase_started_at=NOW,
        output_sequence=7,
        last_activity=NOW,
    )
    cycle.record(NOW, "something happened")
    return cycle


MODELS: list[object] = [
    Epic(
        id="epic-1",
        title="t",
        description="d",
        created_at=NOW,
        tdd_requirements=["r"],
        tdd_constraints={"x": 1},
    ),
    Story(
        id="story-1",
        title="t",
        description="d",
        created_at=NOW,
        epic_id="epic-1",
        acceptance_criteria=["a"],
        priority=1,
        sprint_id="sprint-1",
        tdd_cycle_id="tdd-cycle-1",
        test_status="red",
        test_coverage=12.5,
    ),
    Sprint(
        id="sprint-1",
        goal="g",
        created_at=NOW,
        story_ids=["story-1"],
        status=SprintStatus.ACTIVE,
        start_date=NOW,
        end_date=NOW,
        retrospective={"what_went_well": ["x"]},
        active_tdd_cycles=["c"],
    ),
    _task(),
    ApprovalRequest(
        id="task-1",
        project_name="p",
        task=_task(),
        reason="r",
        created_at=NOW,
        timeout_at=NOW + timedelta(minutes=30),
        status=ApprovalStatus.EXPIRED,
        resolved_by="system",
        resolved_at=NOW,
        comment="expired",
    ),
    _test_result(),
    _cycle(),
    CodeMetrics(coverage=80.0, complexity=2.0, duplication=1.5, maintainability=70.0),
    AgentMetrics(
        total_tasks=3,
        successful_tasks=2,
        failed_tasks=1,
        average_execution_time=10.0,
        last_task_time=NOW,
        error_rate=33.3,
    ),
    ProjectSettings(approval_timeout_seconds=60, sprint_capacity=2),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_model_round_trip(model: object) -> None:
    data = model.to_dict()  # type: ignore[attr-defined]
    restored = type(model).from_dict(json.loads(json.dumps(data)))  # type: ignore[attr-defined]
    assert restored == model
    assert restored.to_dict() == data


def test_aggregate_round_trip_keeps_everything() -> None:
    project = ProjectAggregate(name="p", last_activity=NOW, paused=True, active_cycle_id="tdd-cycle-1")
    project.tasks["task-1"] = _task()
    project.tdd_cycles["tdd-cycle-1"] = _cycle()
    project.agent_metrics["QAAgent"] = AgentMetrics(total_tasks=1, successful_tasks=1)
    restored = ProjectAggregate.from_dict(json.loads(json.dumps(project.to_dict())))
    assert restored == project


def test_agent_metrics_derived_values() -> None:
    metrics = AgentMetrics()
    metrics.record(True, 100.0, NOW)
    metrics.record(False, 300.0, NOW)
    assert metrics.success_rate == 50.0 and metrics.error_rate == 50.0
    assert metrics.average_execution_time == 200.0
    assert metrics.to_dict()["load_score"] == 10.0
