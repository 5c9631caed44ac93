"""Each chat command's payload and messages (domain page §2), and that refused commands change nothing."""

from __future__ import annotations

import json

import pytest
from domain_fakes import START, make_project, make_service

from agent_portal.domain.events import (
    ApprovalRequested,
    ApprovalResolved,
    BacklogUpdated,
    StateChange,
    TaskUpdate,
)
from agent_portal.domain.models import OrchestrationMode, ProjectAggregate
from agent_portal.domain.service import OrchestratorService
from agent_portal.domain.workflow import WorkflowState


def _with_stories(svc: OrchestratorService, *lines: str) -> ProjectAggregate:
    project = make_project()
    project.settings.auto_decompose_epics = False
    assert svc.handle(project, '/epic "Build auth system"').success
    for line in lines:
        assert svc.handle(project, line).success, line
    return project


def test_epic_payload_and_design_task_in_blocking_mode() -> None:
    svc, _ = make_service()
    project = make_project()
    out = svc.handle(project, '/epic "Build auth system"', by="alice")
    assert out.result == {
        "success": True,
        "message": "Epic epic-00000001 created: Build auth system",
        "epic_id": "epic-00000001",
        "title": "Build auth system",
        "description": "Build auth system",
        "next_step": "DesignAgent will propose user stories for approval",
    }
    assert project.state is WorkflowState.BACKLOG_READY
    state_change = out.events[0]
    assert isinstance(state_change, StateChange)
    assert state_change.payload() == {
        "project_name": "demo",
        "old_state": "IDLE",
        "new_state": "BACKLOG_READY",
        "timestamp": START,
        "triggered_by": "alice",
        "command": "/epic",
    }
    approval = project.approvals["task-00000002"]
    assert approval.reason == "Blocking mode requires approval"
    assert approval.task.command == "Decompose epic into user stories: Build auth system"
    assert approval.task.agent_type.value == "DesignAgent"
    assert approval.timeout_at == START.replace(minute=30)
    assert [type(e) for e in out.events] == [StateChange, TaskUpdate, ApprovalRequested]
    assert out.work == []
    assert project.history[-1].to_dict() == {
        "timestamp": "2026-11-25T20:00:00.000Z",
        "from": "IDLE",
        "to": "BACKLOG_READY",
        "command": "/epic",
    }


def test_epic_in_autonomous_mode_dispatches_work() -> None:
    svc, _ = make_service()
    project = make_project()
    project.mode = OrchestrationMode.AUTONOMOUS
    out = svc.handle(project, "/epic Build auth system")
    assert [w.agent_type.value for w in out.work] == ["DesignAgent"]
    assert out.work[0].command == "Decompose epic into user stories: Build auth system"
    assert out.work[0].dry_run is False and project.pending_approvals() == []


def test_epic_title_is_shortened() -> None:
    svc, _ = make_service()
    project = make_project()
    text = "x" * 51
    out = svc.handle(project, f"/epic {text}")
    assert out.result["title"] == "x" * 50 + "..."
    out = svc.execute(project, "/epic", {"title": "Auth"})
    assert out.result["title"] == "Auth" and out.result["description"] == ""


def test_epic_without_decomposition_points_to_add_story() -> None:
    svc, _ = make_service()
    project = make_project()
    project.settings.auto_decompose_epics = False
    assert svc.handle(project, "/epic Auth").result["next_step"] == "Add stories with /backlog add_story"


def test_approve_resolves_pending_and_dispatches() -> None:
    svc, _ = make_service()
    project = make_project()
    svc.handle(project, "/epic Auth")
    out = svc.handle(project, "/approve", by="bob")
    assert out.result == {
        "success": True,
        "message": "Approved 1 items",
        "approved_items": ["task-00000002"],
        "next_step": "Use /sprint plan to plan next sprint",
    }
    resolved = [e for e in out.events if isinstance(e, ApprovalResolved)]
    assert resolved[0].payload()["resolved_by"] == "bob" and resolved[0].approved is True
    assert [w.task_id for w in out.work] == ["task-00000002"]


def test_approve_ignores_unknown_ids() -> None:
    svc, _ = make_service()
    project = make_project()
    svc.handle(project, "/epic Auth")
    out = svc.handle(project, "/approve nope task-00000002")
    assert out.result["approved_items"] == ["task-00000002"]
    assert svc.handle(project, "/approve").result["message"] == "Approved 0 items"


def test_add_story_payload_and_backlog_event() -> None:
    svc, _ = make_service()
    project = _with_stories(svc)
    out = svc.handle(project, '/backlog add_story "Login form" --feature epic-00000001 --priority 2')
    assert out.result == {
        "success": True,
        "message": "Story story-00000002 created",
        "story_id": "story-00000002",
        "title": "Login form",
        "description": "Login form",
    }
    (event,) = out.events
    assert isinstance(event, BacklogUpdated)
    assert event.change_type == "added" and event.new_position == 0
    assert (
        event.story is not None and event.story["priority"] == 2 and event.story["epic_id"] == "epic-00000001"
    )


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/backlog add_story", "Story title or description is required"),
        ("/backlog add_story x --feature epic-ffffffff", "Epic not found: epic-ffffffff"),
        ("/backlog add_story x --priority 9", "Priority must be between 1 (highest) and 5 (lowest)"),
        ("/backlog add_story x --priority soon", "Priority must be between 1 (highest) and 5 (lowest)"),
        ("/backlog prioritize", "Story ID is required"),
        ("/backlog prioritize story-00000002", "Priority must be between 1 (highest) and 5 (lowest)"),
        ("/backlog prioritize story-00000002 0", "Priority must be between 1 (highest) and 5 (lowest)"),
        ("/backlog prioritize story-ffffffff 2", "Story not found: story-ffffffff"),
        ("/backlog remove", "Story ID is required"),
        ("/backlog remove story-ffffffff", "Story not found: story-ffffffff"),
        ("/backlog view sideways", "Unknown backlog type: sideways"),
        ("/backlog view sprint", "No active sprint found"),
        ("/epic", "Epic title or description is required"),
        ("/sprint plan story-ffffffff", "Story not found: story-ffffffff"),
        ("/tdd", "TDD command requires action (e.g., /tdd start, /tdd status)"),
        ("/tdd dance", "Unknown TDD action: dance"),
        ("/tdd commit-tests", "Unknown TDD action: commit-tests"),
        ("/tdd start", "Story ID is required to start TDD cycle"),
        ("/tdd start story-ffffffff", "Story not found: story-ffffffff"),
        ("/tdd test", "No active TDD cycle"),
        ("/tdd abort", "No active TDD cycle"),
        ("/tdd logs", "No active TDD cycle"),
        ("/sprint start", "Command /sprint start not allowed in state BACKLOG_READY"),
        ("/feedback nice", "Command /feedback not allowed in state BACKLOG_READY"),
        ("/dance", "Unknown command: /dance"),
        ("/backlog viewer", "Unknown backlog command"),
        ('/epic "unclosed', "Unterminated quoted string"),
    ],
)
def test_refused_commands_change_nothing(line: str, error: str) -> None:
    svc, clock = make_service()
    project = _with_stories(svc, "/backlog add_story Login form")
    before = json.dumps(project.to_dict(), sort_keys=True)
    clock.advance(60)
    out = svc.handle(project, line)
    assert out.result["success"] is False
    assert out.result["error"] == error
    assert out.events == [] and out.work == [] and out.changed is False
    assert json.dumps(project.to_dict(), sort_keys=True) == before


def test_rejection_payload_shape() -> None:
    svc, _ = make_service()
    project = make_project()
    out = svc.handle(project, "/sprint start")
    assert out.result == {
        "success": False,
        "error": "Command /sprint start not allowed in state IDLE",
        "hint": "No sprint planned. Use /epic then /sprint plan first.",
        "current_state": "IDLE",
        "allowed_commands": [
            "/backlog add_story",
            "/backlog prioritize",
            "/backlog remove",
            "/backlog view",
            "/epic",
            "/state",
        ],
    }


def test_unknown_command_payload() -> None:
    svc, _ = make_service()
    out = svc.handle(make_project(), "/dance now")
    assert out.result["hint"] == "Use /state to see available commands"
    assert out.result["current_state"] == "IDLE"


def test_other_refusal_hints() -> None:
    svc, _ = make_service()
    project = _with_stories(svc)
    assert svc.handle(project, "/tdd start").result["hint"] == "Use: /tdd start <story_id>"
    assert svc.handle(project, "/tdd test").result["hint"] == "Start a TDD cycle with /tdd start <story_id>"
    assert svc.handle(project, "/sprint plan").result == {
        "success": False,
        "error": "No stories in the product backlog",
        "hint": "Add stories with /backlog add_story",
    }
    assert svc.handle(project, "/tdd dance").result["available_actions"] == [
        "start",
        "status",
        "next",
        "abort",
        "logs",
        "overview",
        "design",
        "test",
        "code",
        "refactor",
        "commit",
        "run_tests",
    ]


def test_backlog_view_product_sorted_by_priority() -> None:
    svc, _ = make_service()
    project = _with_stories(
        svc,
        "/backlog add_story Low thing --priority 4",
        "/backlog add_story Urgent thing --priority 1",
        "/backlog add_story Normal thing",
    )
    out = svc.handle(project, "/backlog view")
    assert out.result["backlog_type"] == "product"
    assert out.result["total_stories"] == 3
    assert [i["title"] for i in out.result["items"]] == ["Urgent thing", "Normal thing", "Low thing"]
    assert out.result["items"][0] == {
        "id": "story-00000003",
        "title": "Urgent thing",
        "description": "Urgent thing",
        "priority": 1,
        "epic_id": None,
    }
    assert out.events == [] and out.changed is False


def test_prioritize_reorders() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, "/backlog add_story A", "/backlog add_story B", "/backlog add_story C")
    out = svc.handle(project, "/backlog prioritize story-00000004 1")
    assert out.result == {
        "success": True,
        "message": "Story story-00000004 priority updated from 3 to 1",
        "story_id": "story-00000004",
        "old_priority": 3,
        "new_priority": 1,
    }
    (event,) = out.events
    assert isinstance(event, BacklogUpdated)
    assert (event.change_type, event.old_position, event.new_position) == ("reordered", 2, 0)
    assert project.backlog == ["story-00000004", "story-00000002", "story-00000003"]
    same = svc.handle(project, "/backlog prioritize story-00000004 2").events[0]
    assert isinstance(same, BacklogUpdated) and same.change_type == "updated"


def test_remove_really_removes() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, "/backlog add_story A", "/backlog add_story B")
    out = svc.handle(project, "/backlog remove story-00000002")
    assert out.result == {
        "success": True,
        "message": "Story story-00000002 removed from backlog",
        "story_id": "story-00000002",
    }
    (event,) = out.events
    assert isinstance(event, BacklogUpdated)
    assert event.payload() == {
        "project_name": "demo",
        "change_type": "removed",
        "story_id": "story-00000002",
        "old_position": 0,
    }
    assert "story-00000002" not in project.stories and project.backlog == ["story-00000003"]


def test_sprint_plan_given_ids() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, "/backlog add_story A", "/backlog add_story B", "/backlog add_story C")
    out = svc.handle(project, "/sprint plan story-00000004,story-00000002")
    assert out.result["message"] == "Sprint planned with 2 stories"
    assert out.result["stories"] == ["story-00000004", "story-00000002"]
    assert out.result["next_step"] == "Use /sprint start to begin sprint execution"
    assert project.state is WorkflowState.SPRINT_PLANNED
    sprint = project.sprints[out.result["sprint_id"]]
    assert sprint.story_ids == ["story-00000004", "story-00000002"] and sprint.status.value == "planned"
    assert project.backlog == ["story-00000003"]
    updates = [e for e in out.events if isinstance(e, BacklogUpdated)]
    assert [(e.change_type, e.story_id, e.old_position) for e in updates] == [
        ("updated", "story-00000004", 2),
        ("updated", "story-00000002", 0),
    ]


def test_sprint_plan_defaults_to_top_of_backlog() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, *[f"/backlog add_story S{i} --priority {5 - i % 5}" for i in range(7)])
    project.settings.sprint_capacity = 3
    out = svc.handle(project, "/sprint plan")
    priorities = [project.stories[s].priority for s in out.result["stories"]]
    assert priorities == [1, 2, 3]


def test_sprint_plan_refuses_story_already_planned() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, "/backlog add_story A")
    svc.handle(project, "/sprint plan")
    project.state = WorkflowState.BACKLOG_READY
    out = svc.handle(project, "/sprint plan story-00000002")
    assert out.result["error"] == "Story story-00000002 is not in the product backlog"


def test_state_payload() -> None:
    svc, _ = make_service()
    project = make_project()
    svc.handle(project, "/epic Auth")
    out = svc.handle(project, "/state")
    info = out.result["state_info"]
    assert info["current_state"] == "BACKLOG_READY"
    assert info["allowed_commands"] == [
        "/approve",
        "/backlog add_story",
        "/backlog prioritize",
        "/backlog remove",
        "/backlog view",
        "/epic",
        "/sprint plan",
        "/state",
    ]
    assert info["tdd_integration"] == {"active_cycles": 0, "cycle_ids": [], "can_transition_to_review": True}
    assert info["state_flags"] == {"is_terminal": False, "can_auto_progress": False, "has_active_work": True}
    assert info["recent_transitions"] == [
        {"timestamp": "2026-11-25T20:00:00.000Z", "from": "IDLE", "to": "BACKLOG_READY", "command": "/epic"}
    ]
    assert out.result["project_status"] == {
        "name": "demo",
        "orchestration_mode": "blocking",
        "active_tasks": 1,
        "pending_approvals": 1,
    }
    assert out.result["mermaid_diagram"].startswith("```mermaid")
    assert out.changed is False


def test_tdd_manual_cycle() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, "/backlog add_story Login")
    out = svc.handle(project, "/tdd start story-00000002", by="carol")
    assert out.result == {
        "success": True,
        "message": "TDD cycle started for story story-00000002",
        "cycle_id": "tdd-cycle-00000003",
        "story_id": "story-00000002",
        "current_state": "design",
        "next_step": "Use /tdd design to create detailed specifications",
    }
    assert out.events[0].payload()["started_by"] == "carol"
    again = svc.handle(project, "/tdd start story-00000002")
    assert again.result["error"] == "Story story-00000002 already has an active TDD cycle: tdd-cycle-00000003"
    assert again.result["hint"] == "Use /tdd status to see current cycle or /tdd abort to cancel it"

    status = svc.handle(project, "/tdd status").result
    assert status["current_state"] == "design" and status["next_suggested"] == "/tdd test"
    assert status["cycle_info"]["progress"] == "0/0"

    refused = svc.handle(project, "/tdd code").result
    assert refused == {
        "success": False,
        "error": "Command /tdd code not allowed in TDD state design",
        "hint": "Write failing tests first with /tdd test.",
        "current_state": "design",
        "allowed_commands": [
            "/tdd abort",
            "/tdd design",
            "/tdd next",
            "/tdd run_tests",
            "/tdd start",
            "/tdd status",
            "/tdd test",
        ],
    }
    test = svc.handle(project, "/tdd test")
    assert test.result == {
        "success": True,
        "message": "TDD test completed",
        "current_state": "test_red",
        "next_suggested": "/tdd commit-tests",
    }
    assert test.events[0].payload()["old_state"] == "design"
    nxt = svc.handle(project, "/tdd next").result
    assert nxt["message"] == "Advanced to code_green"
    run = svc.handle(project, "/tdd run_tests")
    assert run.work[0].kind == "run_tests" and run.work[0].cycle_id == "tdd-cycle-00000003"
    assert svc.handle(project, "/tdd refactor").result["current_state"] == "refactor"
    logs = svc.handle(project, "/tdd logs").result["logs_info"]
    assert logs["total_events"] == 5 and len(logs["recent_events"]) == 5
    abort = svc.handle(project, "/tdd abort").result
    assert abort["message"] == "TDD cycle tdd-cycle-00000003 aborted for story story-00000002"
    assert abort["next_step"] == "Start a new TDD cycle with /tdd start <story_id>"
    assert project.stories["story-00000002"].test_status == "aborted"
    overview = svc.handle(project, "/tdd overview").result["overview_info"]
    assert overview == {
        "active_cycles": 0,
        "completed_cycles": 1,
        "total_test_runs": 1,
        "total_refactors": 1,
        "total_commits": 0,
        "average_coverage": 0.0,
        "success_rate": 0.0,
        "active_stories": [],
    }
    assert svc.handle(project, "/tdd status").result == {
        "success": True,
        "message": "No active TDD cycle",
        "allowed_commands": ["/tdd start <story_id>"],
    }


def test_tdd_condition_refusal_with_task() -> None:
    svc, _ = make_service()
    project = _with_stories(svc, "/backlog add_story Login")
    svc.handle(project, '/tdd start story-00000002 "login form"')
    svc.handle(project, "/tdd test")
    out = svc.handle(project, "/tdd code")
    assert out.result["error"] == "Condition not met for /tdd code: has_failing_tests"
    assert out.result["hint"] == "Write and run tests first using /tdd test and /tdd run_tests"
    assert out.changed is False


def test_review_commands() -> None:
    svc, _ = make_service()
    project = make_project()
    project.state = WorkflowState.SPRINT_REVIEW
    out = svc.handle(project, '/request_changes "Add remember me"')
    assert out.result == {
        "success": True,
        "message": "Change request created: Add remember me",
        "next_step": "Changes will be added to backlog",
        "story_id": "story-00000001",
    }
    assert project.state is WorkflowState.BACKLOG_READY and project.backlog == ["story-00000001"]
    project.state = WorkflowState.SPRINT_REVIEW
    out = svc.handle(project, "/feedback Great work")
    assert out.result == {
        "success": True,
        "message": "Sprint feedback recorded: Great work",
        "next_step": "Sprint complete - ready for next epic",
    }
    assert project.state is WorkflowState.IDLE


def test_blocked_commands_without_escalation() -> None:
    svc, _ = make_service()
    project = make_project()
    project.state = WorkflowState.BLOCKED
    assert svc.handle(project, "/suggest_fix use utc").result == {
        "success": True,
        "message": "Fix suggestion received: use utc",
        "next_step": "CodeAgent will attempt to apply fix",
    }
    assert project.state is WorkflowState.SPRINT_ACTIVE
    project.state = WorkflowState.BLOCKED
    assert svc.handle(project, "/skip_task").result == {
        "success": True,
        "message": "Current blocked task skipped",
        "next_step": "Moving to next task in sprint",
    }


def test_force_state_records_history() -> None:
    svc, _ = make_service()
    project = make_project()
    out = svc.force_state(project, WorkflowState.BLOCKED, "recovery")
    assert project.history[-1].command == "force_state:recovery"
    assert out.events[0].payload()["reason"] == "recovery"


def test_history_keeps_last_twenty() -> None:
    svc, _ = make_service()
    project = make_project()
    for i in range(30):
        svc.force_state(project, WorkflowState.BLOCKED if i % 2 == 0 else WorkflowState.IDLE, f"r{i}")
    assert len(project.history) == 20 and project.history[-1].command == "force_state:r29"
