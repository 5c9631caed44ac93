"""The orchestrator's behaviour on one project: chat commands (domain page §2), agent task
reports, approvals and the sprint pipeline that drives each story through its TDD phases.

Every public method takes the project's aggregate, changes it in place and returns a
``CommandOutcome``: the reply payload, the domain events to publish (after the caller has
persisted the aggregate) and the agent work to start. A refused command changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_portal.domain import tdd, workflow
from agent_portal.domain.commands import ParseError, parse
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
    MAX_PRIORITY,
    MIN_PRIORITY,
    AgentMetrics,
    AgentType,
    AgentWork,
    ApprovalRequest,
    ApprovalStatus,
    CodeMetrics,
    Epic,
    OrchestrationMode,
    ProjectAggregate,
    Sprint,
    SprintStatus,
    Story,
    StoryStatus,
    Task,
    TaskStatus,
    TDDCycle,
    TDDState,
    TDDTask,
    TestResult,
    TestStatus,
    TransitionRecord,
    format_ts,
)
from agent_portal.domain.ports import Clock, IdGenerator
from agent_portal.domain.workflow import WorkflowState

JSON = dict[str, Any]

SYSTEM = "system"
BLOCKING_REASON = "Blocking mode requires approval"
PRIORITY_ERROR = "Priority must be between 1 (highest) and 5 (lowest)"
NO_CYCLE_ERROR = "No active TDD cycle"
NO_CYCLE_HINT = "Start a TDD cycle with /tdd start <story_id>"
TDD_ACTIONS = (
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
)

PHASES: tuple[TDDState, ...] = (
    TDDState.DESIGN,
    TDDState.TEST_RED,
    TDDState.CODE_GREEN,
    TDDState.REFACTOR,
    TDDState.COMMIT,
)
PHASE_AGENT: Mapping[TDDState, AgentType] = {
    TDDState.DESIGN: AgentType.DESIGN,
    TDDState.TEST_RED: AgentType.QA,
    TDDState.CODE_GREEN: AgentType.CODE,
    TDDState.REFACTOR: AgentType.CODE,
    TDDState.COMMIT: AgentType.CODE,
}
PHASE_COMMAND: Mapping[TDDState, str] = {
    TDDState.DESIGN: "Write design specifications and acceptance criteria for story {id}: {title}",
    TDDState.TEST_RED: "Write failing tests for story {id}: {title}",
    TDDState.CODE_GREEN: "Implement the minimal code that makes the tests pass for story {id}: {title}",
    TDDState.REFACTOR: "Refactor the implementation of story {id} keeping all tests green: {title}",
    TDDState.COMMIT: "Commit the TDD cycle's work for story {id}: {title}",
}
# The TDD command whose transition a phase's successful task performs; commit completes the cycle.
PHASE_EXIT_COMMAND: Mapping[TDDState, str] = {
    TDDState.DESIGN: "/tdd test",
    TDDState.TEST_RED: "/tdd code",
    TDDState.CODE_GREEN: "/tdd refactor",
    TDDState.REFACTOR: "/tdd commit",
}
# Phase timeouts of the reference config (minutes); their sum estimates a cycle.
PHASE_MINUTES: Mapping[TDDState, int] = {
    TDDState.DESIGN: 30,
    TDDState.TEST_RED: 45,
    TDDState.CODE_GREEN: 60,
    TDDState.REFACTOR: 30,
    TDDState.COMMIT: 15,
}
CYCLE_ESTIMATE = timedelta(minutes=sum(PHASE_MINUTES.values()))
TEST_OUTPUT_TYPES = ("stdout", "stderr", "test_result")


@dataclass
class CommandOutcome:
    result: JSON
    events: list[DomainEvent] = field(default_factory=list)
    work: list[AgentWork] = field(default_factory=list)
    changed: bool = False

    @property
    def success(self) -> bool:
        return bool(self.result.get("success"))


def new_project(name: str, mode: OrchestrationMode = OrchestrationMode.BLOCKING) -> ProjectAggregate:
    return ProjectAggregate(name=name, mode=mode)


def _ms(delta: timedelta) -> float:
    return round(delta.total_seconds() * 1000.0, 3)


def _to_ms(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must be aware datetimes")
    value = value.astimezone(UTC)
    # Millisecond precision is what the wire and the stored JSON carry.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _title_from(description: str, title: str) -> str:
    # The reference's `title or description[:50] + "..." if len(description) > 50 else description`
    # ignores a given title for short descriptions (operator precedence); we honour the title.
    if title:
        return title
    return description[:50] + "..." if len(description) > 50 else description


def _text(kwargs: Mapping[str, Any], key: str) -> str:
    value = kwargs.get(key)
    return "" if value is None else str(value).strip()


def _valid_priority(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_PRIORITY <= value <= MAX_PRIORITY


class _Run:
    """The bookkeeping of one service call: its time, caller and what it produced."""

    def __init__(self, project: ProjectAggregate, now: datetime, by: str) -> None:
        self.project = project
        self.now = now
        self.by = by
        self.events: list[DomainEvent] = []
        self.work: list[AgentWork] = []
        self.changed = False

    def emit(self, event: DomainEvent) -> None:
        self.events.append(event)

    def outcome(self, result: JSON) -> CommandOutcome:
        if self.changed:
            self.project.last_activity = self.now
        return CommandOutcome(result=result, events=self.events, work=self.work, changed=self.changed)


Handler = Callable[[_Run, dict[str, Any]], JSON]


class OrchestratorService:
    def __init__(self, clock: Clock, ids: IdGenerator) -> None:
        self._clock = clock
        self._ids = ids
        self._handlers: dict[str, Handler] = {
            "/epic": self._epic,
            "/approve": self._approve,
            "/sprint plan": self._sprint_plan,
            "/sprint start": self._sprint_start,
            "/sprint status": self._sprint_status,
            "/sprint pause": self._sprint_pause,
            "/sprint resume": self._sprint_resume,
            "/backlog view": self._backlog_view,
            "/backlog add_story": self._backlog_add_story,
            "/backlog prioritize": self._backlog_prioritize,
            "/backlog remove": self._backlog_remove,
            "/request_changes": self._request_changes,
            "/suggest_fix": self._suggest_fix,
            "/skip_task": self._skip_task,
            "/feedback": self._feedback,
            "/state": self._state,
        }

    # ----------------------------------------------------------------- entry points: commands

    def handle(self, project: ProjectAggregate, text: str, *, by: str = "user") -> CommandOutcome:
        """Parse a chat line and run it."""
        try:
            parsed = parse(text)
        except ParseError as exc:
            result: JSON = {"success": False, "error": exc.message}
            if exc.hint:
                result["hint"] = exc.hint
            return CommandOutcome(result=result)
        return self.execute(project, parsed.key, parsed.kwargs, by=by)

    def execute(
        self,
        project: ProjectAggregate,
        command: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        by: str = "user",
    ) -> CommandOutcome:
        """Run a command given as key and keyword arguments (the reference's ``handle_command``)."""
        run = _Run(project, self._now(), by)
        args = dict(kwargs or {})
        new_state: WorkflowState | None = None
        if not (command.startswith("/tdd") or command.startswith("/state")):
            validation = workflow.validate(command, project.state)
            if not validation.ok:
                return CommandOutcome(
                    result={
                        "success": False,
                        "error": validation.error,
                        "hint": validation.hint,
                        "current_state": project.state.value,
                        "allowed_commands": workflow.allowed_commands(project.state),
                    }
                )
            new_state = validation.new_state
        if command.startswith("/tdd"):
            result = self._tdd(run, command, args)
        else:
            handler = self._handlers.get(command)
            if handler is None:
                # Reachable for keys that pass validation by prefix only ("/backlog viewer", "/states").
                error = (
                    "Unknown backlog command"
                    if command.startswith("/backlog")
                    else f"Unknown command: {command}"
                )
                return CommandOutcome(
                    result={"success": False, "error": error, "hint": workflow.UNKNOWN_COMMAND_HINT}
                )
            result = handler(run, args)
        if result.get("success") and new_state is not None and new_state is not project.state:
            before = len(run.events)
            self._set_state(run, new_state, triggered_by=by, command=command)
            # The state change is what the handler's effects follow from; publish it first.
            run.events.insert(0, run.events.pop(before))
        if result.get("success") and run.changed:
            self._settle(run)
        return run.outcome(result)

    # ----------------------------------------------------------------- entry points: agent reports

    def task_started(self, project: ProjectAggregate, task_id: str) -> CommandOutcome:
        run = _Run(project, self._now(), SYSTEM)
        task, error = self._runnable_task(project, task_id)
        if task is None:
            return run.outcome({"success": False, "error": error})
        task.status = TaskStatus.IN_PROGRESS
        task.started_at = run.now
        run.changed = True
        run.emit(self._task_update(run, task))
        run.emit(self._agent_activity(run, task, "started"))
        story = project.stories.get(task.story_id or "")
        if story is not None and task.sprint_id and story.status is StoryStatus.SPRINT:
            story.status = StoryStatus.IN_PROGRESS
            self._emit_sprint_progress(run)
        return run.outcome({"success": True, "task_id": task.id, "task_status": task.status.value})

    def task_progress(self, project: ProjectAggregate, task_id: str, progress: int) -> CommandOutcome:
        run = _Run(project, self._now(), SYSTEM)
        task = project.tasks.get(task_id)
        if task is None:
            return run.outcome({"success": False, "error": f"Task not found: {task_id}"})
        if task.status is not TaskStatus.IN_PROGRESS:
            return run.outcome({"success": False, "error": f"Task {task_id} is not in progress"})
        value = max(0, min(100, int(progress)))
        # Progress is monotone within a task (decisions §5): late or repeated reports are ignored.
        if value > task.progress:
            task.progress = value
            run.changed = True
            run.emit(self._task_update(run, task))
        return run.outcome({"success": True, "task_id": task.id, "progress": task.progress})

    def task_succeeded(
        self,
        project: ProjectAggregate,
        task_id: str,
        output: str = "",
        test_results: Sequence[TestResult] = (),
        metrics: CodeMetrics | None = None,
        proposed_stories: Sequence[Mapping[str, Any]] = (),
    ) -> CommandOutcome:
        """``proposed_stories`` (``title``, ``description``, optional ``priority`` and
        ``acceptance_criteria``) are the stories an epic decomposition task came up with."""
        run = _Run(project, self._now(), SYSTEM)
        task, error = self._runnable_task(project, task_id)
        if task is None:
            return run.outcome({"success": False, "error": error})
        run.changed = True
        if task.phase is not None and task.cycle_id is not None:
            refusal = self._advance_cycle(run, task, list(test_results), metrics)
            if refusal is not None:
                self._attempt_failed(run, task, refusal.error or "", "test_failure", hint=refusal.hint)
                self._settle(run)
                return run.outcome(
                    {
                        "success": True,
                        "task_id": task.id,
                        "task_status": task.status.value,
                        "accepted": False,
                        "error": refusal.error,
                        "hint": refusal.hint,
                    }
                )
        self._complete_task(run, task, output)
        if task.task_type == "epic_decomposition":
            epic_id = task.context.get("epic_id")
            for proposal in proposed_stories:
                self._create_story(
                    run,
                    description=str(proposal.get("description", "")),
                    title=str(proposal.get("title", "")),
                    epic_id=epic_id if isinstance(epic_id, str) else None,
                    priority=int(proposal.get("priority", 3)),
                    acceptance_criteria=[str(c) for c in proposal.get("acceptance_criteria", [])],
                )
        self._settle(run)
        return run.outcome(
            {"success": True, "task_id": task.id, "task_status": task.status.value, "accepted": True}
        )

    def task_failed(
        self, project: ProjectAggregate, task_id: str, error: str, failure_type: str = "agent_error"
    ) -> CommandOutcome:
        """``failure_type`` as in the reference's recovery: test_failure, build_failure, timeout, agent_error."""
        run = _Run(project, self._now(), SYSTEM)
        task, problem = self._runnable_task(project, task_id)
        if task is None:
            return run.outcome({"success": False, "error": problem})
        run.changed = True
        self._attempt_failed(run, task, error, failure_type)
        self._settle(run)
        return run.outcome(
            {
                "success": True,
                "task_id": task.id,
                "task_status": task.status.value,
                "retry_count": task.retry_count,
            }
        )

    def resolve_approval(
        self,
        project: ProjectAggregate,
        request_id: str,
        approved: bool,
        by: str,
        comment: str | None = None,
    ) -> CommandOutcome:
        run = _Run(project, self._now(), by)
        approval = project.approvals.get(request_id)
        if approval is None:
            return run.outcome({"success": False, "error": f"Approval request not found: {request_id}"})
        if not approval.is_pending:
            return run.outcome(
                {
                    "success": False,
                    "error": f"Approval request {request_id} is already {approval.status.value}",
                }
            )
        status = ApprovalStatus.APPROVED if approved else ApprovalStatus.REJECTED
        self._resolve(run, approval, status, by, comment)
        self._settle(run)
        verdict = "approved" if approved else "rejected"
        return run.outcome(
            {
                "success": True,
                "message": f"Request {request_id} {verdict}",
                "request_id": request_id,
                "approved": approved,
            }
        )

    def expire_approvals(self, project: ProjectAggregate, now: datetime | None = None) -> CommandOutcome:
        """Resolve every pending approval whose ``timeout_at`` has passed as decisions §5 says."""
        run = _Run(project, self._now() if now is None else _to_ms(now), SYSTEM)
        expired = [a for a in project.pending_approvals() if a.timeout_at <= run.now]
        for approval in expired:
            self._resolve(run, approval, ApprovalStatus.EXPIRED, SYSTEM, "expired")
        if expired:
            self._settle(run)
        return run.outcome({"success": True, "expired": [a.id for a in expired]})

    def next_approval_deadline(self, project: ProjectAggregate) -> datetime | None:
        """When the application's expiry timer should next call ``expire_approvals``."""
        return min((a.timeout_at for a in project.pending_approvals()), default=None)

    def record_test_output(
        self, project: ProjectAggregate, cycle_id: str, output_type: str, content: str
    ) -> CommandOutcome:
        """Number a chunk of test output: sequence numbers start at 1 per cycle, without gaps."""
        run = _Run(project, self._now(), SYSTEM)
        cycle = project.tdd_cycles.get(cycle_id)
        if cycle is None:
            return run.outcome({"success": False, "error": f"TDD cycle not found: {cycle_id}"})
        if output_type not in TEST_OUTPUT_TYPES:
            return run.outcome({"success": False, "error": f"Unknown output type: {output_type}"})
        cycle.output_sequence += 1
        run.changed = True
        run.emit(
            TestOutput(
                project_name=project.name,
                cycle_id=cycle.id,
                output_type=output_type,
                content=content,
                timestamp=run.now,
                sequence_number=cycle.output_sequence,
            )
        )
        return run.outcome({"success": True, "sequence_number": cycle.output_sequence})

    def record_test_results(
        self,
        project: ProjectAggregate,
        cycle_id: str,
        results: Sequence[TestResult],
        metrics: CodeMetrics | None = None,
    ) -> CommandOutcome:
        """Results of a ``run_tests`` work item, kept on the cycle's current task (they decide the
        TDD conditions)."""
        run = _Run(project, self._now(), SYSTEM)
        cycle = project.tdd_cycles.get(cycle_id)
        if cycle is None:
            return run.outcome({"success": False, "error": f"TDD cycle not found: {cycle_id}"})
        run.changed = True
        current = cycle.current_task()
        if current is not None:
            current.test_results.extend(results)
        if metrics is not None:
            self._apply_coverage(project, cycle, metrics)
        passed = sum(1 for r in results if r.status is TestStatus.GREEN)
        failed = len(results) - passed
        cycle.record(run.now, f"tests run: {passed} passed, {failed} not passing")
        return run.outcome({"success": True, "cycle_id": cycle.id, "passed": passed, "failed": failed})

    def recover_after_restart(self, project: ProjectAggregate) -> CommandOutcome:
        """Hand out again the work that was in flight when the process stopped. Tasks that were
        running are marked interrupted and go back to pending."""
        run = _Run(project, self._now(), SYSTEM)
        for task in project.tasks.values():
            if task.is_terminal or not task.dispatched or self._awaiting_approval(project, task):
                continue
            if task.status is TaskStatus.IN_PROGRESS:
                task.status = TaskStatus.PENDING
                task.context["interrupted"] = True
                run.changed = True
                run.emit(self._task_update(run, task, metadata={"interrupted": True}))
            run.work.append(self._agent_work(project, task))
        return run.outcome({"success": True, "resumed": [w.task_id for w in run.work]})

    def force_state(
        self, project: ProjectAggregate, state: WorkflowState, reason: str, *, by: str = SYSTEM
    ) -> CommandOutcome:
        run = _Run(project, self._now(), by)
        if state is not project.state:
            self._set_state(run, state, triggered_by=by, reason=reason, history=f"force_state:{reason}")
        return run.outcome({"success": True, "current_state": project.state.value})

    def snapshot(self, project: ProjectAggregate) -> JSON:
        """What a fresh page needs (decisions §4 ``get_snapshot``)."""
        sprint = project.current_sprint
        return {
            "project_name": project.name,
            "current_state": project.state.value,
            "orchestration_mode": project.mode.value,
            "paused": project.paused,
            "allowed_commands": workflow.allowed_commands(project.state),
            "pending_approvals": [a.to_dict() for a in project.pending_approvals()],
            "active_tasks": [t.to_dict() for t in project.active_tasks()],
            "sprint": None if sprint is None else sprint.to_dict(),
            "backlog": [project.stories[s].to_dict() for s in project.backlog],
            "active_tdd_cycles": [c.progress_summary() for c in project.active_cycles()],
            "last_activity": None if project.last_activity is None else format_ts(project.last_activity),
        }

    # ----------------------------------------------------------------- workflow command handlers

    def _epic(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        description, title = _text(kwargs, "description"), _text(kwargs, "title")
        if not description and not title:
            return {"success": False, "error": "Epic title or description is required"}
        project = run.project
        epic = Epic(
            id=self._ids.new("epic"),
            title=_title_from(description, title),
            description=description,
            created_at=run.now,
        )
        project.epics[epic.id] = epic
        run.changed = True
        next_step = "Add stories with /backlog add_story"
        if project.settings.auto_decompose_epics:
            task = self._new_task(
                run,
                agent_type=AgentType.DESIGN,
                command=f"Decompose epic into user stories: {description or title}",
                task_type="epic_decomposition",
                context={"epic_id": epic.id, "epic_description": description},
            )
            self._dispatch(run, task)
            next_step = "DesignAgent will propose user stories for approval"
        return {
            "success": True,
            "message": f"Epic {epic.id} created: {epic.title}",
            "epic_id": epic.id,
            "title": epic.title,
            "description": epic.description,
            "next_step": next_step,
        }

    def _approve(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        requested = [str(i) for i in kwargs.get("item_ids") or []]
        pending = {a.id: a for a in run.project.pending_approvals()}
        # Unknown ids are ignored silently, as in the reference.
        ids = list(dict.fromkeys(requested)) if requested else list(pending)
        approved = [pending[i] for i in ids if i in pending]
        for approval in approved:
            self._resolve(run, approval, ApprovalStatus.APPROVED, run.by, None)
        return {
            "success": True,
            "message": f"Approved {len(approved)} items",
            "approved_items": [a.id for a in approved],
            "next_step": "Use /sprint plan to plan next sprint",
        }

    def _sprint_plan(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        requested = list(dict.fromkeys(str(s) for s in kwargs.get("story_ids") or []))
        if requested:
            for story_id in requested:
                story = project.stories.get(story_id)
                if story is None:
                    return {
                        "success": False,
                        "error": f"Story not found: {story_id}",
                        "hint": "Use /backlog view to see the product backlog",
                    }
                if story.status is not StoryStatus.BACKLOG:
                    return {
                        "success": False,
                        "error": f"Story {story_id} is not in the product backlog",
                        "hint": "Use /backlog view to see the product backlog",
                    }
            story_ids = requested
        else:
            if not project.backlog:
                return {
                    "success": False,
                    "error": "No stories in the product backlog",
                    "hint": "Add stories with /backlog add_story",
                }
            story_ids = project.backlog[: project.settings.sprint_capacity]
        goal = _text(kwargs, "goal") or f"Sprint {len(project.sprints) + 1}"
        sprint = Sprint(id=self._ids.new("sprint"), goal=goal, created_at=run.now, story_ids=list(story_ids))
        project.sprints[sprint.id] = sprint
        project.current_sprint_id = sprint.id
        run.changed = True
        for story_id in story_ids:
            story = project.stories[story_id]
            old_position = project.backlog.index(story_id)
            project.backlog.remove(story_id)
            story.status = StoryStatus.SPRINT
            story.sprint_id = sprint.id
            run.emit(self._backlog_event(run, "updated", story, old_position=old_position))
        return {
            "success": True,
            "message": f"Sprint planned with {len(story_ids)} stories",
            "stories": list(story_ids),
            "sprint_id": sprint.id,
            "sprint_goal": sprint.goal,
            "next_step": "Use /sprint start to begin sprint execution",
        }

    def _sprint_start(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        sprint = project.current_sprint
        if sprint is None or sprint.status is not SprintStatus.PLANNED:
            return {"success": False, "error": "No planned sprint found", "hint": "Use /sprint plan first"}
        sprint.status = SprintStatus.ACTIVE
        sprint.start_date = run.now
        project.paused = False
        run.changed = True
        for story_id in sprint.story_ids:
            story = project.stories[story_id]
            cycle = self._start_cycle(run, story, story.title)
            sprint.active_tdd_cycles.append(cycle.id)
            for phase in PHASES:
                self._new_task(
                    run,
                    agent_type=PHASE_AGENT[phase],
                    command=PHASE_COMMAND[phase].format(id=story.id, title=story.title),
                    task_type=phase.value,
                    context={
                        "story_title": story.title,
                        "story_description": story.description,
                        "acceptance_criteria": list(story.acceptance_criteria),
                    },
                    phase=phase,
                    story_id=story.id,
                    cycle_id=cycle.id,
                    sprint_id=sprint.id,
                )
        self._emit_sprint_progress(run)
        return {
            "success": True,
            "message": "Sprint started - agents are now working",
            "active_tasks": len(project.active_tasks()),
            "sprint_id": sprint.id,
            "next_step": "Monitor progress with /sprint status",
        }

    def _sprint_status(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        sprint = project.current_sprint
        tasks = project.sprint_tasks(sprint.id) if sprint is not None else list(project.tasks.values())
        return {
            "success": True,
            "message": f"Sprint status for {project.name}",
            "total_tasks": len(tasks),
            "completed_tasks": sum(1 for t in tasks if t.status is TaskStatus.COMPLETED),
            "failed_tasks": sum(1 for t in tasks if t.status is TaskStatus.FAILED),
            "current_state": project.state.value,
            "pending_approvals": len(project.pending_approvals()),
            "sprint_id": None if sprint is None else sprint.id,
        }

    def _sprint_pause(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        project.paused = True
        run.changed = True
        for task in project.tasks.values():
            if task.status is TaskStatus.IN_PROGRESS:
                run.emit(self._agent_activity(run, task, "paused"))
        return {
            "success": True,
            "message": "Sprint paused - agent work halted",
            "next_step": "Use /sprint resume to continue",
        }

    def _sprint_resume(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        run.project.paused = False
        run.changed = True
        return {
            "success": True,
            "message": "Sprint resumed - agents continuing work",
            "next_step": "Monitor progress with /sprint status",
        }

    def _backlog_view(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        backlog_type = _text(kwargs, "backlog_type") or "product"
        if backlog_type == "product":
            items = [
                {
                    "id": s.id,
                    "title": s.title,
                    "description": s.description,
                    "priority": s.priority,
                    "epic_id": s.epic_id,
                }
                for s in (project.stories[i] for i in project.backlog)
            ]
            return {"success": True, "backlog_type": "product", "items": items, "total_stories": len(items)}
        if backlog_type == "sprint":
            sprint = project.current_sprint
            # A planned sprint counts too: its backlog is what users want to check before /sprint start.
            if sprint is None or sprint.status is SprintStatus.COMPLETED:
                return {"success": False, "error": "No active sprint found"}
            items = [
                {"id": s.id, "title": s.title, "status": s.status.value, "priority": s.priority}
                for s in (project.stories[i] for i in sprint.story_ids if i in project.stories)
            ]
            return {
                "success": True,
                "backlog_type": "sprint",
                "sprint_id": sprint.id,
                "sprint_goal": sprint.goal,
                "items": items,
            }
        return {
            "success": False,
            "error": f"Unknown backlog type: {backlog_type}",
            "hint": "Use /backlog view product or /backlog view sprint",
        }

    def _backlog_add_story(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        description, title = _text(kwargs, "description"), _text(kwargs, "title")
        if not description and not title:
            return {"success": False, "error": "Story title or description is required"}
        epic_id = _text(kwargs, "epic_id") or None
        if epic_id is not None and epic_id not in run.project.epics:
            return {"success": False, "error": f"Epic not found: {epic_id}"}
        priority = kwargs.get("priority", 3)
        if not _valid_priority(priority):
            return {"success": False, "error": PRIORITY_ERROR}
        criteria = [str(c) for c in kwargs.get("acceptance_criteria") or []]
        story = self._create_story(run, description, title, epic_id, priority, criteria)
        return {
            "success": True,
            "message": f"Story {story.id} created",
            "story_id": story.id,
            "title": story.title,
            "description": story.description,
        }

    def _backlog_prioritize(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        story_id = _text(kwargs, "story_id")
        if not story_id:
            return {"success": False, "error": "Story ID is required"}
        priority = kwargs.get("priority")
        if not _valid_priority(priority):
            return {"success": False, "error": PRIORITY_ERROR}
        assert isinstance(priority, int)
        story = project.stories.get(story_id)
        if story is None:
            return {"success": False, "error": f"Story not found: {story_id}"}
        old_priority = story.priority
        story.priority = priority
        run.changed = True
        if story_id in project.backlog:
            old_position = project.backlog.index(story_id)
            project.backlog.remove(story_id)
            new_position = self._insert_in_backlog(project, story)
            change = "reordered" if new_position != old_position else "updated"
            run.emit(
                self._backlog_event(run, change, story, old_position=old_position, new_position=new_position)
            )
        else:
            run.emit(self._backlog_event(run, "updated", story))
        return {
            "success": True,
            "message": f"Story {story_id} priority updated from {old_priority} to {priority}",
            "story_id": story_id,
            "old_priority": old_priority,
            "new_priority": priority,
        }

    def _backlog_remove(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        # The reference answers "Unknown backlog command" here; removing is what users expect.
        project = run.project
        story_id = _text(kwargs, "story_id")
        if not story_id:
            return {"success": False, "error": "Story ID is required"}
        story = project.stories.get(story_id)
        if story is None:
            return {"success": False, "error": f"Story not found: {story_id}"}
        if story_id not in project.backlog:
            return {
                "success": False,
                "error": f"Story {story_id} is not in the product backlog",
                "hint": "Only stories in the product backlog can be removed",
            }
        old_position = project.backlog.index(story_id)
        project.backlog.remove(story_id)
        del project.stories[story_id]
        run.changed = True
        run.emit(self._backlog_event(run, "removed", story, old_position=old_position, include_story=False))
        return {"success": True, "message": f"Story {story_id} removed from backlog", "story_id": story_id}

    def _request_changes(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        description = _text(kwargs, "description")
        self._close_sprint(
            run,
            {
                "what_went_well": [],
                "what_could_improve": [description] if description else [],
                "action_items": [],
            },
        )
        result: JSON = {
            "success": True,
            "message": f"Change request created: {description}",
            "next_step": "Changes will be added to backlog",
        }
        if description:
            story = self._create_story(run, description, "", None, 3, [])
            result["story_id"] = story.id
        return result

    def _suggest_fix(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        description = _text(kwargs, "description")
        escalation = self._oldest_escalation(run.project)
        run.changed = True
        if escalation is not None:
            self._resolve(
                run, escalation, ApprovalStatus.APPROVED, run.by, description or None, unblock=False
            )
        return {
            "success": True,
            "message": f"Fix suggestion received: {description}",
            "next_step": "CodeAgent will attempt to apply fix",
        }

    def _skip_task(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        escalation = self._oldest_escalation(run.project)
        run.changed = True
        if escalation is not None:
            self._resolve(run, escalation, ApprovalStatus.REJECTED, run.by, "skipped", unblock=False)
        return {
            "success": True,
            "message": "Current blocked task skipped",
            "next_step": "Moving to next task in sprint",
        }

    def _feedback(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        description = _text(kwargs, "description")
        self._close_sprint(
            run,
            {
                "what_went_well": [description] if description else [],
                "what_could_improve": [],
                "action_items": [],
            },
        )
        return {
            "success": True,
            "message": f"Sprint feedback recorded: {description}",
            "next_step": "Sprint complete - ready for next epic",
        }

    def _state(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        active_cycles = project.active_cycles()
        return {
            "success": True,
            "state_info": {
                "current_state": project.state.value,
                "allowed_commands": workflow.allowed_commands(project.state),
                "tdd_integration": {
                    "active_cycles": len(active_cycles),
                    "cycle_ids": [c.id for c in active_cycles],
                    "can_transition_to_review": not active_cycles,
                },
                "state_flags": {
                    "is_terminal": workflow.is_terminal(project.state),
                    "can_auto_progress": workflow.can_auto_progress(project.state),
                    "has_active_work": bool(project.active_tasks() or active_cycles),
                },
                "recent_transitions": [h.to_dict() for h in project.history[-5:]],
            },
            "project_status": {
                "name": project.name,
                "orchestration_mode": project.mode.value,
                "active_tasks": len(project.active_tasks()),
                "pending_approvals": len(project.pending_approvals()),
            },
            "mermaid_diagram": workflow.MERMAID_DIAGRAM,
        }

    # ----------------------------------------------------------------- /tdd

    def _tdd(self, run: _Run, command: str, kwargs: dict[str, Any]) -> JSON:
        parts = command.split()
        if len(parts) < 2:
            return {"success": False, "error": "TDD command requires action (e.g., /tdd start, /tdd status)"}
        action = parts[1]
        if action not in TDD_ACTIONS:
            return {
                "success": False,
                "error": f"Unknown TDD action: {action}",
                "available_actions": list(TDD_ACTIONS),
            }
        if action == "start":
            return self._tdd_start(run, kwargs)
        if action == "overview":
            return self._tdd_overview(run)
        story_id = _text(kwargs, "story_id")
        if story_id and story_id not in run.project.stories:
            return {"success": False, "error": f"Story not found: {story_id}"}
        if action in ("status", "logs"):
            cycle = self._find_cycle(run.project, story_id, include_complete=bool(story_id))
            return self._tdd_status(cycle) if action == "status" else self._tdd_logs(cycle)
        cycle = self._find_cycle(run.project, story_id, include_complete=False)
        if cycle is None:
            return {"success": False, "error": NO_CYCLE_ERROR, "hint": NO_CYCLE_HINT}
        if action == "abort":
            return self._tdd_abort(run, cycle)
        return self._tdd_transition(run, cycle, action)

    def _tdd_start(self, run: _Run, kwargs: dict[str, Any]) -> JSON:
        project = run.project
        story_id = _text(kwargs, "story_id")
        if not story_id:
            return {
                "success": False,
                "error": "Story ID is required to start TDD cycle",
                "hint": "Use: /tdd start <story_id>",
            }
        story = project.stories.get(story_id)
        if story is None:
            return {
                "success": False,
                "error": f"Story not found: {story_id}",
                "available_stories": list(project.stories),
            }
        existing = project.tdd_cycles.get(story.tdd_cycle_id or "")
        if existing is not None and not existing.is_complete:
            return {
                "success": False,
                "error": f"Story {story_id} already has an active TDD cycle: {existing.id}",
                "hint": "Use /tdd status to see current cycle or /tdd abort to cancel it",
            }
        cycle = self._start_cycle(run, story, _text(kwargs, "task_description") or None)
        return {
            "success": True,
            "message": f"TDD cycle started for story {story_id}",
            "cycle_id": cycle.id,
            "story_id": story_id,
            "current_state": cycle.current_state.value,
            "next_step": "Use /tdd design to create detailed specifications",
        }

    def _tdd_status(self, cycle: TDDCycle | None) -> JSON:
        if cycle is None:
            return {"success": True, "message": NO_CYCLE_ERROR, "allowed_commands": ["/tdd start <story_id>"]}
        task = cycle.current_task()
        return {
            "success": True,
            "cycle_info": cycle.progress_summary(),
            "allowed_commands": tdd.allowed_tdd_commands(cycle.current_state, task),
            "next_suggested": tdd.suggested_next(cycle.current_state, task),
            "current_state": cycle.current_state.value,
        }

    def _tdd_logs(self, cycle: TDDCycle | None) -> JSON:
        if cycle is None:
            return {"success": False, "error": NO_CYCLE_ERROR, "hint": NO_CYCLE_HINT}
        return {
            "success": True,
            "logs_info": {
                "cycle_id": cycle.id,
                "story_id": cycle.story_id,
                "total_events": cycle.total_events,
                "last_activity": None if cycle.last_activity is None else format_ts(cycle.last_activity),
                "recent_events": cycle.log[-5:],
            },
        }

    def _tdd_overview(self, run: _Run) -> JSON:
        cycles = list(run.project.tdd_cycles.values())
        active = [c for c in cycles if not c.is_complete]
        completed = [c for c in cycles if c.is_complete]
        succeeded = [c for c in completed if not c.aborted]
        return {
            "success": True,
            "overview_info": {
                "active_cycles": len(active),
                "completed_cycles": len(completed),
                "total_test_runs": sum(c.total_test_runs for c in cycles),
                "total_refactors": sum(c.total_refactors for c in cycles),
                "total_commits": sum(c.total_commits for c in cycles),
                "average_coverage": (
                    round(sum(c.overall_test_coverage for c in cycles) / len(cycles), 2) if cycles else 0.0
                ),
                "success_rate": round(100.0 * len(succeeded) / len(completed), 2) if completed else 0.0,
                "active_stories": [c.story_id for c in active][:5],
            },
        }

    def _tdd_abort(self, run: _Run, cycle: TDDCycle) -> JSON:
        run.changed = True
        self._abort_story(run, cycle.story_id, f"TDD cycle {cycle.id} aborted")
        return {
            "success": True,
            "message": f"TDD cycle {cycle.id} aborted for story {cycle.story_id}",
            "cycle_id": cycle.id,
            "story_id": cycle.story_id,
            "current_state": cycle.current_state.value,
            "next_step": "Start a new TDD cycle with /tdd start <story_id>",
        }

    def _tdd_transition(self, run: _Run, cycle: TDDCycle, action: str) -> JSON:
        command = f"/tdd {action}"
        validation = tdd.validate_for_cycle(command, cycle)
        if not validation.ok or validation.new_state is None:
            task = cycle.current_task()
            return {
                "success": False,
                "error": validation.error,
                "hint": validation.hint,
                "current_state": cycle.current_state.value,
                "allowed_commands": tdd.allowed_tdd_commands(cycle.current_state, task),
            }
        run.changed = True
        if action == "run_tests":
            cycle.total_test_runs += 1
            run.work.append(
                AgentWork(
                    project_name=run.project.name,
                    task_id=self._ids.new("run"),
                    agent_type=AgentType.QA,
                    command="run_tests",
                    kind="run_tests",
                    phase=cycle.current_state,
                    story_id=cycle.story_id,
                    cycle_id=cycle.id,
                )
            )
        elif action == "refactor":
            cycle.total_refactors += 1
        self._move_cycle(run, cycle, validation.new_state, command)
        if action == "commit":
            cycle.total_commits += 1
            if cycle.complete_current_task(run.now) and cycle.is_complete:
                story = run.project.stories.get(cycle.story_id)
                if story is not None:
                    story.test_status = "complete"
        task = cycle.current_task()
        message = (
            f"Advanced to {cycle.current_state.value}" if action == "next" else f"TDD {action} completed"
        )
        return {
            "success": True,
            "message": message,
            "current_state": cycle.current_state.value,
            "next_suggested": tdd.suggested_next(cycle.current_state, task),
        }

    # ----------------------------------------------------------------- the sprint pipeline

    def _settle(self, run: _Run) -> None:
        """Bring the project to rest after a change: block on a pending escalation, hand out the
        work that became ready, and move to review once every sprint task is done."""
        project = run.project
        if project.state is WorkflowState.SPRINT_ACTIVE and self._oldest_escalation(project) is not None:
            self._set_state(
                run,
                WorkflowState.BLOCKED,
                triggered_by=SYSTEM,
                reason="A task failed after all retries and needs a decision",
                history="force_state:task escalated",
            )
        for task in list(project.tasks.values()):
            if task.sprint_id is None and task.status is TaskStatus.PENDING and not task.dispatched:
                self._dispatch(run, task)
        sprint = project.current_sprint
        if sprint is None or sprint.status is not SprintStatus.ACTIVE:
            return
        if not project.paused and project.state in (WorkflowState.SPRINT_ACTIVE, WorkflowState.BLOCKED):
            self._release_sprint_work(run, sprint)
        tasks = project.sprint_tasks(sprint.id)
        done = {TaskStatus.COMPLETED, TaskStatus.CANCELLED}
        if project.state is WorkflowState.SPRINT_ACTIVE and tasks and all(t.status in done for t in tasks):
            sprint.end_date = run.now
            self._set_state(
                run,
                WorkflowState.SPRINT_REVIEW,
                triggered_by=SYSTEM,
                reason="All sprint tasks completed",
                history="force_state:all sprint tasks completed",
            )
            self._emit_sprint_progress(run)

    def _release_sprint_work(self, run: _Run, sprint: Sprint) -> None:
        # Stories already under way always get their next phase; new stories start only while
        # fewer than max_concurrent_cycles stories are under way.
        project = run.project
        in_flight = 0
        fresh: list[Task] = []
        for story_id in sprint.story_ids:
            tasks = [t for t in project.sprint_tasks(sprint.id) if t.story_id == story_id]
            upcoming = next((t for t in tasks if not t.is_terminal), None)
            if upcoming is None:
                continue
            blocked = any(t.status is TaskStatus.FAILED for t in tasks)
            if any(t.dispatched or t.is_terminal for t in tasks):
                in_flight += 1
                if not upcoming.dispatched and not blocked:
                    self._dispatch(run, upcoming)
            elif not blocked:
                fresh.append(upcoming)
        for task in fresh:
            if in_flight >= project.settings.max_concurrent_cycles:
                break
            self._dispatch(run, task)
            in_flight += 1

    def _dispatch(self, run: _Run, task: Task) -> None:
        project = run.project
        task.dispatched = True
        run.changed = True
        if project.mode is OrchestrationMode.BLOCKING and "approved_by" not in task.context:
            approval = ApprovalRequest(
                id=task.id,
                project_name=project.name,
                task=Task.from_dict(task.to_dict()),
                reason=BLOCKING_REASON,
                created_at=run.now,
                timeout_at=run.now + timedelta(seconds=project.settings.approval_timeout_seconds),
                retry_count=task.retry_count,
            )
            self._add_approval(run, approval)
        else:
            run.work.append(self._agent_work(project, task))

    def _agent_work(self, project: ProjectAggregate, task: Task) -> AgentWork:
        return AgentWork(
            project_name=project.name,
            task_id=task.id,
            agent_type=task.agent_type,
            command=task.command,
            kind="task",
            phase=task.phase,
            story_id=task.story_id,
            cycle_id=task.cycle_id,
            attempt=task.retry_count + 1,
            dry_run=project.mode is OrchestrationMode.PARTIAL,
            context=dict(task.context),
        )

    def _advance_cycle(
        self, run: _Run, task: Task, results: list[TestResult], metrics: CodeMetrics | None
    ) -> tdd.TDDValidation | None:
        """Apply a phase task's success to its cycle; a refusal (a TDD condition not met) is returned
        and the task's attempt counts as failed. Test results are kept either way: they are facts."""
        project = run.project
        cycle = project.tdd_cycles[task.cycle_id or ""]
        current = cycle.current_task()
        if results:
            cycle.total_test_runs += 1
            if current is not None:
                current.test_results.extend(results)
        if metrics is not None:
            self._apply_coverage(project, cycle, metrics)
        if task.phase is TDDState.COMMIT:
            if cycle.current_state is not TDDState.COMMIT:
                return tdd.TDDValidation(
                    False,
                    error=f"Command /tdd commit not allowed in TDD state {cycle.current_state.value}",
                    hint=tdd.TDD_ERROR_HINTS.get(("/tdd commit", cycle.current_state)),
                )
            return None
        assert task.phase is not None
        command = PHASE_EXIT_COMMAND[task.phase]
        validation = tdd.validate_for_cycle(command, cycle)
        if not validation.ok or validation.new_state is None:
            cycle.record(run.now, f"{task.phase.value} refused: {validation.error}")
            return validation
        if command == "/tdd refactor":
            cycle.total_refactors += 1
        self._move_cycle(run, cycle, validation.new_state, command, results=results, metrics=metrics)
        return None

    @staticmethod
    def _agent_activity(
        run: _Run,
        task: Task,
        status: str,
        *,
        duration: float | None = None,
        metrics: JSON | None = None,
        error: str | None = None,
    ) -> AgentActivity:
        return AgentActivity(
            agent_type=task.agent_type.value,
            project_name=run.project.name,
            action=task.task_type,
            status=status,
            timestamp=run.now,
            task_id=task.id,
            story_id=task.story_id,
            duration=duration,
            metrics=metrics,
            error=error,
        )

    def _agent_finished(self, run: _Run, task: Task, error: str | None) -> AgentActivity:
        """Records the attempt in the agent's metrics; `error` None means it succeeded."""
        duration = _ms(run.now - task.started_at) if task.started_at is not None else 0.0
        metrics = self._record_agent(run.project, task.agent_type, error is None, duration, run.now)
        status = "completed" if error is None else "failed"
        return self._agent_activity(
            run, task, status, duration=duration, metrics=metrics.to_dict(), error=error
        )

    def _complete_task(self, run: _Run, task: Task, output: str) -> None:
        project = run.project
        task.status = TaskStatus.COMPLETED
        task.progress = 100
        task.completed_at = run.now
        task.output = output
        task.error = None
        run.emit(self._task_update(run, task))
        run.emit(self._agent_finished(run, task, None))
        if task.phase is TDDState.COMMIT and task.cycle_id is not None:
            cycle = project.tdd_cycles[task.cycle_id]
            cycle.total_commits += 1
            cycle.complete_current_task(run.now)
            cycle.completed_at = run.now
            cycle.record(run.now, "cycle complete")
            story = project.stories.get(cycle.story_id)
            if story is not None:
                story.status = StoryStatus.DONE
                story.test_status = "complete"
            sprint = project.sprints.get(task.sprint_id or "")
            if sprint is not None and cycle.id in sprint.active_tdd_cycles:
                sprint.active_tdd_cycles.remove(cycle.id)
            self._emit_sprint_progress(run)

    def _attempt_failed(
        self, run: _Run, task: Task, error: str, failure_type: str, hint: str | None = None
    ) -> None:
        task.retry_count += 1
        task.error = error
        run.emit(self._agent_finished(run, task, error))
        metadata: JSON = {"retry_count": task.retry_count, "failure_type": failure_type}
        if hint:
            metadata["hint"] = hint
        if task.retry_count < task.max_retries:
            # Back to the queue; _settle hands it out again (a retry needs no new approval).
            task.status = TaskStatus.PENDING
            task.dispatched = False
            task.context.setdefault("approved_by", SYSTEM)
            run.emit(self._task_update(run, task, metadata={**metadata, "will_retry": True}))
            return
        task.status = TaskStatus.FAILED
        run.emit(self._task_update(run, task, metadata={**metadata, "will_retry": False}))
        self._escalate(run, task, failure_type)

    def _escalate(self, run: _Run, task: Task, failure_type: str) -> None:
        project = run.project
        base = f"tdd-failure-{task.cycle_id}" if task.cycle_id else f"task-failure-{task.id}"
        request_id, n = base, 1
        while request_id in project.approvals:
            n += 1
            request_id = f"{base}-{n}"
        if task.cycle_id:
            reason = f"TDD cycle failed after {task.retry_count} retries: {failure_type}"
        else:
            reason = f"Task failed after {task.retry_count} retries: {failure_type}"
        escalation = Task(
            id=request_id,
            agent_type=AgentType.ORCHESTRATOR,
            command=f"Decide on failed task {task.id}: {task.error}",
            created_at=run.now,
            task_type="escalation",
            context={"failed_task_id": task.id, "failure_type": failure_type, "error": task.error},
            retry_count=task.retry_count,
            max_retries=task.max_retries,
            story_id=task.story_id,
            cycle_id=task.cycle_id,
            sprint_id=task.sprint_id,
            phase=task.phase,
        )
        self._add_approval(
            run,
            ApprovalRequest(
                id=request_id,
                project_name=project.name,
                task=escalation,
                reason=reason,
                created_at=run.now,
                timeout_at=run.now + timedelta(seconds=project.settings.approval_timeout_seconds),
                retry_count=task.retry_count,
            ),
        )
        if task.cycle_id:
            project.tdd_cycles[task.cycle_id].record(run.now, f"escalated: {reason}")

    def _add_approval(self, run: _Run, approval: ApprovalRequest) -> None:
        run.project.approvals[approval.id] = approval
        run.changed = True
        run.emit(
            ApprovalRequested(
                project_name=run.project.name,
                request_id=approval.id,
                task=approval.task.to_dict(),
                reason=approval.reason,
                created_at=approval.created_at,
                retry_count=approval.retry_count,
                timeout_at=approval.timeout_at,
            )
        )

    def _resolve(
        self,
        run: _Run,
        approval: ApprovalRequest,
        status: ApprovalStatus,
        by: str,
        comment: str | None,
        *,
        unblock: bool = True,
    ) -> None:
        project = run.project
        approved = status is ApprovalStatus.APPROVED
        approval.status = status
        approval.resolved_by = by
        approval.resolved_at = run.now
        approval.comment = comment
        run.changed = True
        run.emit(
            ApprovalResolved(
                project_name=project.name,
                request_id=approval.id,
                approved=approved,
                resolved_by=by,
                resolved_at=run.now,
                comment=comment,
            )
        )
        if approval.task.task_type == "escalation":
            failed = project.tasks.get(str(approval.task.context.get("failed_task_id")))
            if failed is not None and failed.status is TaskStatus.FAILED:
                if approved:
                    failed.status = TaskStatus.PENDING
                    failed.retry_count = 0
                    failed.dispatched = False
                    failed.error = None
                    failed.context["approved_by"] = by
                    if comment:
                        failed.context["suggested_fix"] = comment
                    run.emit(self._task_update(run, failed, metadata={"retry_approved_by": by}))
                elif failed.story_id is not None:
                    self._abort_story(run, failed.story_id, f"Skipped after failure: {failed.error}")
                else:
                    failed.status = TaskStatus.CANCELLED
                    run.emit(self._task_update(run, failed))
            if (
                unblock
                and project.state is WorkflowState.BLOCKED
                and self._oldest_escalation(project) is None
            ):
                self._set_state(
                    run,
                    WorkflowState.SPRINT_ACTIVE,
                    triggered_by=by,
                    reason="Blocked task resolved",
                    history="force_state:blocked task resolved",
                )
            return
        task = project.tasks.get(approval.id)
        if task is None or task.is_terminal:
            return
        if approved:
            task.context["approved_by"] = by
            run.work.append(self._agent_work(project, task))
        elif task.story_id is not None and task.sprint_id is not None:
            self._abort_story(run, task.story_id, f"Approval {status.value} for task {task.id}")
        else:
            task.status = TaskStatus.CANCELLED
            task.error = f"Approval {status.value}"
            run.emit(self._task_update(run, task))

    def _abort_story(self, run: _Run, story_id: str, reason: str) -> None:
        """Stop all remaining work on a story: its open tasks are cancelled (approvals waiting for
        them are withdrawn) and its cycle ends aborted."""
        project = run.project
        run.changed = True
        for task in list(project.tasks.values()):
            if task.story_id != story_id or task.status is TaskStatus.COMPLETED:
                continue
            if task.status is TaskStatus.CANCELLED:
                continue
            task.status = TaskStatus.CANCELLED
            task.error = reason
            run.emit(self._task_update(run, task))
            waiting = project.approvals.get(task.id)
            if waiting is not None and waiting.is_pending:
                self._resolve(run, waiting, ApprovalStatus.REJECTED, SYSTEM, "cancelled")
        story = project.stories.get(story_id)
        if story is None:
            return
        cycle = project.tdd_cycles.get(story.tdd_cycle_id or "")
        if cycle is not None and not cycle.is_complete:
            self._move_cycle(run, cycle, TDDState.COMMIT, "/tdd abort")
            cycle.completed_at = run.now
            cycle.aborted = True
            sprint = project.sprints.get(story.sprint_id or "")
            if sprint is not None and cycle.id in sprint.active_tdd_cycles:
                sprint.active_tdd_cycles.remove(cycle.id)
        story.test_status = "aborted"
        if story.sprint_id is not None:
            self._emit_sprint_progress(run)

    def _close_sprint(self, run: _Run, retrospective: JSON) -> None:
        sprint = run.project.current_sprint
        run.changed = True
        if sprint is None or sprint.status is SprintStatus.COMPLETED:
            return
        sprint.status = SprintStatus.COMPLETED
        sprint.end_date = sprint.end_date or run.now
        sprint.retrospective = retrospective

    # ----------------------------------------------------------------- helpers

    def _now(self) -> datetime:
        return _to_ms(self._clock.now())

    def _set_state(
        self,
        run: _Run,
        new_state: WorkflowState,
        *,
        triggered_by: str,
        command: str | None = None,
        reason: str | None = None,
        history: str | None = None,
    ) -> None:
        project = run.project
        old_state = project.state
        if new_state is old_state:
            return
        project.state = new_state
        run.changed = True
        project.record_transition(
            TransitionRecord(run.now, old_state, new_state, history or command or "unknown")
        )
        run.emit(
            StateChange(
                project_name=project.name,
                old_state=old_state.value,
                new_state=new_state.value,
                timestamp=run.now,
                triggered_by=triggered_by,
                command=command,
                reason=reason,
            )
        )

    def _new_task(
        self,
        run: _Run,
        *,
        agent_type: AgentType,
        command: str,
        task_type: str,
        context: JSON,
        phase: TDDState | None = None,
        story_id: str | None = None,
        cycle_id: str | None = None,
        sprint_id: str | None = None,
    ) -> Task:
        task = Task(
            id=self._ids.new("task"),
            agent_type=agent_type,
            command=command,
            created_at=run.now,
            task_type=task_type,
            context=context,
            max_retries=run.project.settings.max_retries,
            phase=phase,
            story_id=story_id,
            cycle_id=cycle_id,
            sprint_id=sprint_id,
        )
        run.project.tasks[task.id] = task
        run.changed = True
        run.emit(self._task_update(run, task))
        return task

    def _start_cycle(self, run: _Run, story: Story, task_description: str | None) -> TDDCycle:
        project = run.project
        cycle = TDDCycle(
            id=self._ids.new("tdd-cycle"),
            story_id=story.id,
            started_at=run.now,
            phase_started_at=run.now,
        )
        # As in the reference, a cycle only gets a task (and so TDD conditions) when it has a
        # description; sprint cycles always do.
        if task_description:
            tdd_task = TDDTask(
                id=self._ids.new("tdd-task"),
                cycle_id=cycle.id,
                description=task_description,
                started_at=run.now,
                acceptance_criteria=list(story.acceptance_criteria),
            )
            cycle.add_task(tdd_task)
            cycle.start_task(tdd_task.id)
        cycle.record(run.now, f"cycle started for story {story.id}")
        project.tdd_cycles[cycle.id] = cycle
        project.active_cycle_id = cycle.id
        story.tdd_cycle_id = cycle.id
        story.test_status = TDDState.DESIGN.value
        run.changed = True
        run.emit(
            TDDCycleStarted(
                project_name=project.name,
                cycle_id=cycle.id,
                story_id=story.id,
                started_by=run.by,
                estimated_duration=_ms(CYCLE_ESTIMATE),
                timestamp=run.now,
            )
        )
        return cycle

    def _move_cycle(
        self,
        run: _Run,
        cycle: TDDCycle,
        new_state: TDDState,
        command: str,
        *,
        results: Sequence[TestResult] = (),
        metrics: CodeMetrics | None = None,
    ) -> None:
        old_state = cycle.current_state
        cycle.current_state = new_state
        task = cycle.current_task()
        if task is not None:
            task.current_state = new_state
        cycle.record(run.now, f"{old_state.value} -> {new_state.value} ({command})")
        if new_state is old_state:
            return
        started = cycle.phase_started_at or cycle.started_at
        cycle.phase_started_at = run.now
        story = run.project.stories.get(cycle.story_id)
        if story is not None:
            story.test_status = new_state.value
        run.emit(
            TDDStateChange(
                project_name=run.project.name,
                cycle_id=cycle.id,
                old_state=old_state.value,
                new_state=new_state.value,
                timestamp=run.now,
                phase_duration=_ms(run.now - started),
                test_results=[r.to_dict() for r in results] or None,
                code_metrics=None if metrics is None else metrics.to_dict(),
            )
        )

    def _find_cycle(
        self, project: ProjectAggregate, story_id: str, *, include_complete: bool
    ) -> TDDCycle | None:
        if story_id:
            cycle = project.tdd_cycles.get(project.stories[story_id].tdd_cycle_id or "")
            if cycle is None or (cycle.is_complete and not include_complete):
                return None
            return cycle
        active = project.tdd_cycles.get(project.active_cycle_id or "")
        if active is not None and not active.is_complete:
            return active
        open_cycles = project.active_cycles()
        return open_cycles[-1] if open_cycles else None

    def _create_story(
        self,
        run: _Run,
        description: str,
        title: str,
        epic_id: str | None,
        priority: int,
        acceptance_criteria: list[str],
    ) -> Story:
        project = run.project
        story = Story(
            id=self._ids.new("story"),
            title=_title_from(description, title),
            description=description,
            created_at=run.now,
            epic_id=epic_id,
            acceptance_criteria=acceptance_criteria,
            priority=priority if _valid_priority(priority) else 3,
        )
        project.stories[story.id] = story
        position = self._insert_in_backlog(project, story)
        run.changed = True
        run.emit(self._backlog_event(run, "added", story, new_position=position))
        return story

    @staticmethod
    def _insert_in_backlog(project: ProjectAggregate, story: Story) -> int:
        # After every story of the same or higher priority: equal priorities keep arrival order.
        position = len(project.backlog)
        for index, other_id in enumerate(project.backlog):
            if project.stories[other_id].priority > story.priority:
                position = index
                break
        project.backlog.insert(position, story.id)
        return position

    def _backlog_event(
        self,
        run: _Run,
        change_type: str,
        story: Story,
        *,
        old_position: int | None = None,
        new_position: int | None = None,
        include_story: bool = True,
    ) -> BacklogUpdated:
        return BacklogUpdated(
            project_name=run.project.name,
            change_type=change_type,
            story_id=story.id,
            story=story.to_dict() if include_story else None,
            old_position=old_position,
            new_position=new_position,
        )

    def _task_update(self, run: _Run, task: Task, metadata: JSON | None = None) -> TaskUpdate:
        meta: JSON = {"attempt": task.retry_count + 1}
        if task.story_id:
            meta["story_id"] = task.story_id
        if task.cycle_id:
            meta["cycle_id"] = task.cycle_id
        meta.update(metadata or {})
        return TaskUpdate(
            project_name=run.project.name,
            task_id=task.id,
            task_type=task.task_type,
            status=task.status.value,
            progress=task.progress,
            agent_type=task.agent_type.value,
            started_at=task.started_at,
            completed_at=task.completed_at,
            error=task.error,
            metadata=meta,
        )

    def _emit_sprint_progress(self, run: _Run) -> None:
        project = run.project
        sprint = project.current_sprint
        if sprint is None or sprint.status is SprintStatus.PLANNED:
            return
        stories = [project.stories[s] for s in sprint.story_ids if s in project.stories]
        failed = sum(1 for s in stories if s.test_status == "aborted")
        completed = sum(1 for s in stories if s.status is StoryStatus.DONE)
        in_progress = sum(
            1 for s in stories if s.status is StoryStatus.IN_PROGRESS and s.test_status != "aborted"
        )
        start = sprint.start_date or run.now
        elapsed = run.now - start
        hours = elapsed.total_seconds() / 3600.0
        # Velocity: stories completed per hour of sprint so far.
        velocity = round(completed / hours, 3) if hours > 0 else 0.0
        remaining = max(0, len(stories) - completed - failed)
        if remaining == 0:
            estimated = run.now
        elif completed:
            estimated = run.now + elapsed / completed * remaining
        else:
            lanes = max(1, project.settings.max_concurrent_cycles)
            estimated = start + CYCLE_ESTIMATE * math.ceil(remaining / lanes)
            estimated = max(estimated, run.now)
        run.emit(
            SprintProgress(
                project_name=project.name,
                sprint_id=sprint.id,
                total_stories=len(stories),
                completed_stories=completed,
                failed_stories=failed,
                in_progress_stories=in_progress,
                estimated_completion=estimated,
                velocity=velocity,
            )
        )

    def _apply_coverage(self, project: ProjectAggregate, cycle: TDDCycle, metrics: CodeMetrics) -> None:
        cycle.overall_test_coverage = metrics.coverage
        current = cycle.current_task()
        if current is not None:
            current.test_coverage = metrics.coverage
        story = project.stories.get(cycle.story_id)
        if story is not None:
            story.test_coverage = metrics.coverage

    @staticmethod
    def _record_agent(
        project: ProjectAggregate, agent_type: AgentType, success: bool, duration_ms: float, now: datetime
    ) -> AgentMetrics:
        metrics = project.agent_metrics.setdefault(agent_type.value, AgentMetrics())
        metrics.record(success, duration_ms, now)
        return metrics

    @staticmethod
    def _awaiting_approval(project: ProjectAggregate, task: Task) -> bool:
        approval = project.approvals.get(task.id)
        return approval is not None and approval.is_pending

    def _runnable_task(self, project: ProjectAggregate, task_id: str) -> tuple[Task | None, str]:
        task = project.tasks.get(task_id)
        if task is None:
            return None, f"Task not found: {task_id}"
        if task.is_terminal:
            return None, f"Task {task_id} is already {task.status.value}"
        if not task.dispatched or self._awaiting_approval(project, task):
            return None, f"Task {task_id} has not been dispatched"
        return task, ""

    @staticmethod
    def _oldest_escalation(project: ProjectAggregate) -> ApprovalRequest | None:
        return next(
            (a for a in project.pending_approvals() if a.task.task_type == "escalation"),
            None,
        )
