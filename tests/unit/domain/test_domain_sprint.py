"""The sprint pipeline: agent tasks through TDD phases, approvals, retries, escalation, review."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from domain_fakes import START, FakeClock, SequentialIds, make_project, make_service, play, results_for

from agent_portal.domain.events import (
    AgentActivity,
    ApprovalRequested,
    ApprovalResolved,
    DomainEvent,
    SprintProgress,
    StateChange,
    TaskUpdate,
    TDDCycleStarted,
    TDDStateChange,
    TestOutput,
)
from agent_portal.domain.models import (
    OrchestrationMode,
    ProjectAggregate,
    TaskStatus,
    TestResult,
    TestStatus,
)
from agent_portal.domain.service import CommandOutcome, OrchestratorService
from agent_portal.domain.workflow import WorkflowState


def _planned(svc: OrchestratorService, stories: int, mode: OrchestrationMode) -> ProjectAggregate:
    project = make_project()
    project.mode = mode
    project.settings.auto_decompose_epics = False
    svc.handle(project, "/epic Auth")
    for i in range(stories):
        svc.handle(project, f"/backlog add_story Story {i}")
    assert svc.handle(project, "/sprint plan").success
    return project


def _started(
    stories: int = 1, mode: OrchestrationMode = OrchestrationMode.AUTONOMOUS
) -> tuple[OrchestratorService, FakeClock, ProjectAggregate, CommandOutcome]:
    svc, clock = make_service()
    project = _planned(svc, stories, mode)
    out = svc.handle(project, "/sprint start", by="alice")
    assert out.success
    return svc, clock, project, out


def _of(events: list[DomainEvent], kind: type[DomainEvent]) -> list[DomainEvent]:
    return [e for e in events if isinstance(e, kind)]


def test_sprint_start_payload_and_work() -> None:
    _svc, _, project, out = _started(stories=2)
    assert out.result["message"] == "Sprint started - agents are now working"
    assert out.result["active_tasks"] == 10
    assert out.result["next_step"] == "Monitor progress with /sprint status"
    assert isinstance(out.events[0], StateChange) and out.events[0].new_state == "SPRINT_ACTIVE"
    assert len(_of(out.events, TDDCycleStarted)) == 2
    started = _of(out.events, TDDCycleStarted)[0]
    assert started.payload()["started_by"] == "alice"
    assert started.payload()["estimated_duration"] == 180 * 60 * 1000
    assert [(w.agent_type.value, w.phase and w.phase.value) for w in out.work] == [
        ("DesignAgent", "design"),
        ("DesignAgent", "design"),
    ]
    assert {t.task_type for t in project.tasks.values()} == {
        "design",
        "test_red",
        "code_green",
        "refactor",
        "commit",
    }
    assert _of(out.events, SprintProgress)


def test_concurrency_limit_of_cycles() -> None:
    svc, clock, project, out = _started(stories=4)
    assert len(out.work) == 3
    events = play(svc, project, clock, out.work)
    assert project.state is WorkflowState.SPRINT_REVIEW
    assert all(t.status is TaskStatus.COMPLETED for t in project.tasks.values())
    assert len(_of(events, TDDStateChange)) == 4 * 4


def test_whole_sprint_in_blocking_mode() -> None:
    svc, clock = make_service()
    project = make_project()
    events: list[DomainEvent] = []

    out = svc.handle(project, '/epic "Build auth system"', by="alice")
    events += out.events
    out = svc.handle(project, "/approve", by="alice")
    events += out.events
    (design,) = out.work
    clock.advance(60)
    events += svc.task_started(project, design.task_id).events
    out = svc.task_succeeded(
        project,
        design.task_id,
        output="2 stories",
        proposed_stories=[
            {
                "title": "Login form",
                "description": "As a user I log in",
                "priority": 1,
                "acceptance_criteria": ["rejects bad passwords"],
            },
            {"title": "Logout", "description": "As a user I log out"},
        ],
    )
    events += out.events
    assert [s.title for s in project.stories.values()] == ["Login form", "Logout"]
    assert all(s.epic_id == "epic-00000001" for s in project.stories.values())

    out = svc.handle(project, "/sprint plan", by="alice")
    events += out.events
    out = svc.handle(project, "/sprint start", by="alice")
    events += out.events
    assert out.work == [] and len(project.pending_approvals()) == 2
    assert {a.reason for a in project.pending_approvals()} == {"Blocking mode requires approval"}

    events += play(svc, project, clock, out.work)
    assert project.state is WorkflowState.SPRINT_REVIEW
    assert svc.handle(project, "/sprint status").success is False  # not allowed in review

    review = [
        e for e in _of(events, StateChange) if isinstance(e, StateChange) and e.new_state == "SPRINT_REVIEW"
    ]
    assert len(review) == 1
    assert review[0].payload() == {
        "project_name": "demo",
        "old_state": "SPRINT_ACTIVE",
        "new_state": "SPRINT_REVIEW",
        "timestamp": clock.now(),
        "triggered_by": "system",
        "reason": "All sprint tasks completed",
    }
    assert project.history[-1].command == "force_state:all sprint tasks completed"

    # Every cycle went through the phases in order, with test results and metrics attached.
    for cycle in project.tdd_cycles.values():
        changes = [
            e for e in _of(events, TDDStateChange) if isinstance(e, TDDStateChange) and e.cycle_id == cycle.id
        ]
        assert [(c.old_state, c.new_state) for c in changes] == [
            ("design", "test_red"),
            ("test_red", "code_green"),
            ("code_green", "refactor"),
            ("refactor", "commit"),
        ]
        assert all(c.phase_duration is not None and c.phase_duration > 0 for c in changes)
        assert changes[1].test_results and changes[1].test_results[0]["status"] == "red"
        assert changes[2].test_results and changes[2].test_results[0]["status"] == "green"
        assert changes[1].code_metrics == {
            "coverage": 85.0,
            "complexity": 3.0,
            "duplication": 1.0,
            "maintainability": 80.0,
        }
        assert cycle.is_complete and cycle.total_commits == 1 and cycle.total_refactors == 1

    assert all(s.status.value == "done" and s.test_status == "complete" for s in project.stories.values())
    final = _of(events, SprintProgress)[-1]
    assert isinstance(final, SprintProgress)
    assert (
        final.total_stories,
        final.completed_stories,
        final.failed_stories,
        final.in_progress_stories,
    ) == (2, 2, 0, 0)
    assert final.velocity > 0 and final.estimated_completion == clock.now()

    # Progress reports never go backwards within a task.
    seen: dict[str, int] = {}
    for event in _of(events, TaskUpdate):
        assert isinstance(event, TaskUpdate)
        assert event.progress >= seen.get(event.task_id, 0)
        seen[event.task_id] = event.progress

    # Approvals: one per agent task (2 stories x 5 phases + the epic), all resolved by alice.
    resolved = _of(events, ApprovalResolved)
    assert len(resolved) == 11 and all(
        isinstance(e, ApprovalResolved) and e.resolved_by == "alice" for e in resolved
    )
    activity = Counter(e.status for e in _of(events, AgentActivity) if isinstance(e, AgentActivity))
    assert activity == {"started": 11, "completed": 11}

    out = svc.handle(project, '/feedback "Smooth sprint"', by="alice")
    assert out.success and project.to_dict()["state"] == "IDLE"
    assert project.current_sprint is not None and project.current_sprint.status.value == "completed"
    assert project.current_sprint.retrospective == {
        "what_went_well": ["Smooth sprint"],
        "what_could_improve": [],
        "action_items": [],
    }


def test_no_early_review_while_work_remains() -> None:
    svc, _clock, project, out = _started(stories=1)
    (work,) = out.work
    svc.task_started(project, work.task_id)
    out = svc.task_succeeded(project, work.task_id)
    assert project.state is WorkflowState.SPRINT_ACTIVE
    assert [w.phase and w.phase.value for w in out.work] == ["test_red"]


def test_retries_then_escalation_blocks() -> None:
    svc, clock, project, out = _started(stories=1)
    (work,) = out.work
    for attempt in (1, 2):
        assert work.attempt == attempt
        svc.task_started(project, work.task_id)
        out = svc.task_failed(project, work.task_id, "agent crashed")
        (work,) = out.work
        assert out.result["task_status"] == "pending" and out.result["retry_count"] == attempt
    svc.task_started(project, work.task_id)
    clock.advance(5)
    out = svc.task_failed(project, work.task_id, "agent crashed")
    task = project.tasks[work.task_id]
    assert task.status is TaskStatus.FAILED and task.retry_count == 3
    cycle_id = task.cycle_id
    (request,) = _of(out.events, ApprovalRequested)
    assert isinstance(request, ApprovalRequested)
    assert request.request_id == f"tdd-failure-{cycle_id}"
    assert request.reason == "TDD cycle failed after 3 retries: agent_error"
    assert request.task["agent_type"] == "Orchestrator" and request.retry_count == 3
    assert request.timeout_at == request.created_at + timedelta(minutes=30)
    (blocked,) = _of(out.events, StateChange)
    assert isinstance(blocked, StateChange)
    assert (blocked.new_state, blocked.triggered_by) == ("BLOCKED", "system")
    assert out.work == []

    # Approving the escalation retries the task and unblocks.
    out = svc.resolve_approval(project, request.request_id, True, "jordan", "try again")
    assert out.result == {
        "success": True,
        "message": f"Request {request.request_id} approved",
        "request_id": request.request_id,
        "approved": True,
    }
    assert project.state is WorkflowState.SPRINT_ACTIVE
    (retry,) = out.work
    assert retry.task_id == work.task_id and retry.context["suggested_fix"] == "try again"
    assert svc.resolve_approval(project, request.request_id, True, "jordan").result["error"] == (
        f"Approval request {request.request_id} is already approved"
    )


def _fail_three_times(svc: OrchestratorService, project: ProjectAggregate, task_id: str) -> None:
    for _ in range(3):
        svc.task_started(project, task_id)
        svc.task_failed(project, task_id, "boom", "build_failure")


def test_skip_task_aborts_story_and_reaches_review() -> None:
    svc, _clock, project, out = _started(stories=1)
    _fail_three_times(svc, project, out.work[0].task_id)
    assert project.state is WorkflowState.BLOCKED
    assert project.pending_approvals()[0].reason == "TDD cycle failed after 3 retries: build_failure"
    out = svc.handle(project, "/skip_task", by="jordan")
    assert out.result["message"] == "Current blocked task skipped"
    states = [(e.old_state, e.new_state) for e in _of(out.events, StateChange) if isinstance(e, StateChange)]
    assert states == [("BLOCKED", "SPRINT_ACTIVE"), ("SPRINT_ACTIVE", "SPRINT_REVIEW")]
    assert all(t.status is TaskStatus.CANCELLED for t in project.tasks.values())
    story = next(iter(project.stories.values()))
    assert story.test_status == "aborted"
    progress = _of(out.events, SprintProgress)[-1]
    assert isinstance(progress, SprintProgress) and progress.failed_stories == 1
    resolved = _of(out.events, ApprovalResolved)[0]
    assert isinstance(resolved, ApprovalResolved) and (resolved.approved, resolved.comment) == (
        False,
        "skipped",
    )


def test_suggest_fix_retries_blocked_task() -> None:
    svc, _clock, project, out = _started(stories=1)
    task_id = out.work[0].task_id
    _fail_three_times(svc, project, task_id)
    out = svc.handle(project, '/suggest_fix "pin the dependency"', by="jordan")
    assert project.state is WorkflowState.SPRINT_ACTIVE
    (work,) = out.work
    assert work.task_id == task_id and work.context["suggested_fix"] == "pin the dependency"
    assert project.tasks[task_id].retry_count == 0


def test_failed_condition_counts_as_failed_attempt() -> None:
    svc, clock, project, out = _started(stories=1)
    design = out.work[0]
    svc.task_started(project, design.task_id)
    out = svc.task_succeeded(project, design.task_id)
    (qa,) = out.work
    svc.task_started(project, qa.task_id)
    passing = results_for("code_green", 1, clock.now())
    out = svc.task_succeeded(project, qa.task_id, test_results=passing)
    assert out.result["accepted"] is False
    assert out.result["error"] == "Condition not met for /tdd code: has_failing_tests"
    assert out.result["hint"] == "Tests are passing. Write more specific tests or ensure they fail initially"
    assert project.tasks[qa.task_id].retry_count == 1
    assert [w.task_id for w in out.work] == [qa.task_id]
    cycle = project.tdd_cycles[qa.cycle_id or ""]
    assert cycle.current_state.value == "test_red"
    update = _of(out.events, TaskUpdate)[0]
    assert isinstance(update, TaskUpdate) and update.metadata is not None
    assert update.metadata["will_retry"] is True


def test_blocking_approvals_expire() -> None:
    svc, clock, project, out = _started(stories=1, mode=OrchestrationMode.BLOCKING)
    (approval,) = project.pending_approvals()
    assert svc.next_approval_deadline(project) == START + timedelta(minutes=30)
    assert svc.expire_approvals(project, START + timedelta(minutes=29)).events == []
    clock.advance(31 * 60)
    out = svc.expire_approvals(project)
    assert out.result == {"success": True, "expired": [approval.id]}
    resolved = _of(out.events, ApprovalResolved)[0]
    assert resolved.payload() == {
        "project_name": "demo",
        "request_id": approval.id,
        "approved": False,
        "resolved_by": "system",
        "resolved_at": clock.now(),
        "comment": "expired",
    }
    assert project.approvals[approval.id].status.value == "expired"
    assert project.state is WorkflowState.SPRINT_REVIEW
    assert svc.next_approval_deadline(project) is None


def test_rejected_approval_cancels_story_work() -> None:
    svc, _clock, project, out = _started(stories=2, mode=OrchestrationMode.BLOCKING)
    first = project.pending_approvals()[0]
    out = svc.resolve_approval(project, first.id, False, "jordan", "not now")
    assert out.result["message"] == f"Request {first.id} rejected"
    story = project.tasks[first.id].story_id
    assert all(t.status is TaskStatus.CANCELLED for t in project.tasks.values() if t.story_id == story)
    assert project.state is WorkflowState.SPRINT_ACTIVE
    assert svc.resolve_approval(project, "nope", True, "x").result == {
        "success": False,
        "error": "Approval request not found: nope",
    }


def test_pause_holds_new_work_until_resume() -> None:
    svc, _clock, project, out = _started(stories=1)
    (design,) = out.work
    svc.task_started(project, design.task_id)
    paused = svc.handle(project, "/sprint pause")
    assert paused.result == {
        "success": True,
        "message": "Sprint paused - agent work halted",
        "next_step": "Use /sprint resume to continue",
    }
    assert [e.status for e in _of(paused.events, AgentActivity) if isinstance(e, AgentActivity)] == ["paused"]
    out = svc.task_succeeded(project, design.task_id)
    assert out.work == []
    status = svc.handle(project, "/sprint status").result
    assert (
        status["total_tasks"] == 5
        and status["completed_tasks"] == 1
        and status["current_state"] == ("SPRINT_PAUSED")
    )
    resumed = svc.handle(project, "/sprint resume")
    assert resumed.result["message"] == "Sprint resumed - agents continuing work"
    assert [w.phase and w.phase.value for w in resumed.work] == ["test_red"]


def test_progress_is_monotone_and_clamped() -> None:
    svc, _clock, project, out = _started(stories=1)
    task_id = out.work[0].task_id
    assert svc.task_progress(project, task_id, 10).result["error"] == f"Task {task_id} is not in progress"
    svc.task_started(project, task_id)
    assert len(svc.task_progress(project, task_id, 50).events) == 1
    late = svc.task_progress(project, task_id, 30)
    assert late.events == [] and late.changed is False and project.tasks[task_id].progress == 50
    assert svc.task_progress(project, task_id, 250).result["progress"] == 100


def test_reports_for_unknown_or_finished_tasks_change_nothing() -> None:
    svc, _clock, project, out = _started(stories=1)
    task_id = out.work[0].task_id
    before = json.dumps(project.to_dict(), sort_keys=True)
    assert svc.task_succeeded(project, "task-ffffffff").result["error"] == "Task not found: task-ffffffff"
    pending = next(t for t in project.tasks.values() if not t.dispatched)
    assert (
        svc.task_started(project, pending.id).result["error"] == f"Task {pending.id} has not been dispatched"
    )
    assert json.dumps(project.to_dict(), sort_keys=True) == before
    svc.task_started(project, task_id)
    svc.task_succeeded(project, task_id)
    assert svc.task_failed(project, task_id, "late").result["error"] == f"Task {task_id} is already completed"


def test_test_output_sequence_is_gapless_per_cycle() -> None:
    svc, _clock, project, out = _started(stories=2)
    first, second = (w.cycle_id or "" for w in out.work)
    numbers = [
        svc.record_test_output(project, first, "stdout", f"line {i}").result["sequence_number"]
        for i in range(3)
    ]
    other = svc.record_test_output(project, second, "stderr", "x")
    assert numbers == [1, 2, 3]
    event = other.events[0]
    assert isinstance(event, TestOutput) and event.sequence_number == 1 and event.output_type == "stderr"
    assert svc.record_test_output(project, first, "html", "x").result["success"] is False
    assert svc.record_test_output(project, first, "test_result", "ok").result["sequence_number"] == 4


def test_record_test_results_feed_conditions() -> None:
    svc, clock = make_service()
    project = make_project()
    project.settings.auto_decompose_epics = False
    svc.handle(project, "/epic Auth")
    svc.handle(project, "/backlog add_story Login")
    cycle_id = svc.handle(project, '/tdd start story-00000002 "login"').result["cycle_id"]
    svc.handle(project, "/tdd test")
    red = TestResult(
        id="test-1", test_file="t.py", test_name="t", status=TestStatus.RED, timestamp=clock.now()
    )
    assert svc.record_test_results(project, cycle_id, [red]).result == {
        "success": True,
        "cycle_id": cycle_id,
        "passed": 0,
        "failed": 1,
    }
    assert svc.handle(project, "/tdd code").result["current_state"] == "code_green"


def test_round_trip_mid_sprint_and_identical_behaviour_after_restore() -> None:
    ids_a, clock_a = SequentialIds(), FakeClock()
    svc_a = OrchestratorService(clock_a, ids_a)
    project = _planned(svc_a, 2, OrchestrationMode.BLOCKING)
    out = svc_a.handle(project, "/sprint start")
    play(svc_a, project, clock_a, out.work, limit=7)
    svc_a.record_test_output(project, next(iter(project.tdd_cycles)), "stdout", "hello")
    data = project.to_dict()
    restored = ProjectAggregate.from_dict(json.loads(json.dumps(data)))
    assert restored.to_dict() == data
    assert restored == project

    # A restarted process (same clock, same id sequence) goes on to the same end as the original.
    ids_b, clock_b = SequentialIds(), FakeClock(clock_a.now())
    ids_b.count = ids_a.count
    svc_b = OrchestratorService(clock_b, ids_b)
    for svc, clock, aggregate in ((svc_a, clock_a, project), (svc_b, clock_b, restored)):
        resumed = svc.recover_after_restart(aggregate)
        play(svc, aggregate, clock, resumed.work)
    assert restored.to_dict() == project.to_dict()
    assert restored.state is WorkflowState.SPRINT_REVIEW


def test_recover_after_restart_reissues_in_flight_work() -> None:
    svc, _clock, project, out = _started(stories=2)
    running, queued = out.work
    svc.task_started(project, running.task_id)
    restored = ProjectAggregate.from_dict(json.loads(json.dumps(project.to_dict())))
    out = svc.recover_after_restart(restored)
    assert sorted(w.task_id for w in out.work) == sorted([running.task_id, queued.task_id])
    task = restored.tasks[running.task_id]
    assert task.status is TaskStatus.PENDING and task.context["interrupted"] is True
    update = _of(out.events, TaskUpdate)[0]
    assert (
        isinstance(update, TaskUpdate)
        and update.metadata is not None
        and update.metadata["interrupted"] is True
    )


def test_recover_skips_tasks_awaiting_approval() -> None:
    svc, _clock, project, _out = _started(stories=1, mode=OrchestrationMode.BLOCKING)
    assert svc.recover_after_restart(project).work == []


def test_partial_mode_marks_work_as_dry_run() -> None:
    _svc, _clock, _project, out = _started(stories=1, mode=OrchestrationMode.PARTIAL)
    assert [w.dry_run for w in out.work] == [True]
