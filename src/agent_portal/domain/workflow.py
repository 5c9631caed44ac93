"""The project workflow state machine (domain page §1): which chat command may run in which state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class WorkflowState(StrEnum):
    IDLE = "IDLE"
    BACKLOG_READY = "BACKLOG_READY"
    SPRINT_PLANNED = "SPRINT_PLANNED"
    SPRINT_ACTIVE = "SPRINT_ACTIVE"
    SPRINT_PAUSED = "SPRINT_PAUSED"
    SPRINT_REVIEW = "SPRINT_REVIEW"
    BLOCKED = "BLOCKED"


S = WorkflowState

# Insertion order of the inner mappings is part of the behaviour: the generic hint lists
# the allowed states in exactly this order.
TRANSITIONS: Mapping[str, Mapping[WorkflowState, WorkflowState]] = {
    "/epic": {S.IDLE: S.BACKLOG_READY, S.BACKLOG_READY: S.BACKLOG_READY},
    "/approve": {S.BACKLOG_READY: S.BACKLOG_READY},
    "/sprint plan": {S.BACKLOG_READY: S.SPRINT_PLANNED},
    "/sprint start": {S.SPRINT_PLANNED: S.SPRINT_ACTIVE},
    "/sprint status": {
        S.SPRINT_ACTIVE: S.SPRINT_ACTIVE,
        S.SPRINT_PAUSED: S.SPRINT_PAUSED,
        S.BLOCKED: S.BLOCKED,
    },
    "/sprint pause": {S.SPRINT_ACTIVE: S.SPRINT_PAUSED},
    "/sprint resume": {S.SPRINT_PAUSED: S.SPRINT_ACTIVE},
    "/request_changes": {S.SPRINT_REVIEW: S.BACKLOG_READY},
    "/suggest_fix": {S.BLOCKED: S.SPRINT_ACTIVE},
    "/skip_task": {S.BLOCKED: S.SPRINT_ACTIVE},
    "/feedback": {S.SPRINT_REVIEW: S.IDLE},
    "/state": {state: state for state in WorkflowState},
}

BACKLOG_COMMANDS: tuple[str, ...] = (
    "/backlog view",
    "/backlog add_story",
    "/backlog prioritize",
    "/backlog remove",
)

ERROR_HINTS: Mapping[tuple[str, WorkflowState], str] = {
    ("/sprint plan", S.SPRINT_ACTIVE): "Sprint already active. Use /sprint status or /sprint pause.",
    ("/sprint start", S.SPRINT_ACTIVE): "Sprint already active. Use /sprint status.",
    ("/epic", S.SPRINT_ACTIVE): "Cannot create epic during active sprint. Use /sprint pause first.",
    ("/approve", S.SPRINT_ACTIVE): "No items pending approval. Use /sprint status.",
    ("/sprint start", S.IDLE): "No sprint planned. Use /epic then /sprint plan first.",
}

BACKLOG_IN_REVIEW_ERROR = "Backlog modifications not allowed during sprint review"
BACKLOG_IN_REVIEW_HINT = "Complete sprint review with /feedback or /request_changes first"
UNKNOWN_COMMAND_HINT = "Use /state to see available commands"


@dataclass(frozen=True)
class Validation:
    ok: bool
    new_state: WorkflowState | None = None
    error: str | None = None
    hint: str | None = None


def is_backlog_command(command: str) -> bool:
    return any(command.startswith(prefix) for prefix in BACKLOG_COMMANDS)


def allowed_states(command: str) -> list[WorkflowState]:
    if is_backlog_command(command):
        return [state for state in WorkflowState if state is not S.SPRINT_REVIEW]
    return list(TRANSITIONS.get(command, {}))


def validate(command: str, state: WorkflowState) -> Validation:
    """Validate a bare command key (arguments already stripped) against the current state."""
    if is_backlog_command(command):
        if state is S.SPRINT_REVIEW:
            return Validation(False, error=BACKLOG_IN_REVIEW_ERROR, hint=BACKLOG_IN_REVIEW_HINT)
        return Validation(True, new_state=state)
    targets = TRANSITIONS.get(command)
    if targets is None:
        return Validation(False, error=f"Unknown command: {command}", hint=UNKNOWN_COMMAND_HINT)
    if state not in targets:
        hint = ERROR_HINTS.get((command, state))
        if hint is None:
            hint = "Try when in states: " + ", ".join(s.value for s in targets)
        return Validation(False, error=f"Command {command} not allowed in state {state.value}", hint=hint)
    return Validation(True, new_state=targets[state])


def allowed_commands(state: WorkflowState) -> list[str]:
    commands = [command for command, targets in TRANSITIONS.items() if state in targets]
    if state is not S.SPRINT_REVIEW:
        commands.extend(BACKLOG_COMMANDS)
    return sorted(commands)


def is_terminal(state: WorkflowState) -> bool:
    return state in (S.BLOCKED, S.SPRINT_REVIEW)


def can_auto_progress(state: WorkflowState) -> bool:
    return state is S.SPRINT_ACTIVE


MERMAID_DIAGRAM = """```mermaid
stateDiagram-v2
    [*] --> IDLE
    IDLE --> BACKLOG_READY : /epic
    BACKLOG_READY --> BACKLOG_READY : /epic, /approve
    BACKLOG_READY --> SPRINT_PLANNED : /sprint plan
    SPRINT_PLANNED --> SPRINT_ACTIVE : /sprint start
    SPRINT_ACTIVE --> SPRINT_PAUSED : /sprint pause
    SPRINT_PAUSED --> SPRINT_ACTIVE : /sprint resume
    SPRINT_ACTIVE --> BLOCKED : task failed 3 times
    BLOCKED --> SPRINT_ACTIVE : /suggest_fix, /skip_task
    SPRINT_ACTIVE --> SPRINT_REVIEW : all sprint tasks done
    SPRINT_REVIEW --> BACKLOG_READY : /request_changes
    SPRINT_REVIEW --> IDLE : /feedback
```"""
