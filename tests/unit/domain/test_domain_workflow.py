"""The workflow state machine as a full table (domain page §1): every command × every state."""

from __future__ import annotations

import pytest

from agent_portal.domain.workflow import (
    BACKLOG_COMMANDS,
    TRANSITIONS,
    WorkflowState,
    allowed_commands,
    validate,
)

S = WorkflowState
STATES = [
    S.IDLE,
    S.BACKLOG_READY,
    S.SPRINT_PLANNED,
    S.SPRINT_ACTIVE,
    S.SPRINT_PAUSED,
    S.SPRINT_REVIEW,
    S.BLOCKED,
]
G = "g"
SAME = "same"

# Transcribed from the domain page table, column order = STATES. A state value is the result;
# SAME means allowed without change; G / H1..H5 / HB are rejections with that hint.
TABLE: dict[str, list[object]] = {
    "/epic": [S.BACKLOG_READY, S.BACKLOG_READY, G, "H1", G, G, G],
    "/approve": [G, S.BACKLOG_READY, G, "H2", G, G, G],
    "/sprint plan": [G, S.SPRINT_PLANNED, G, "H3", G, G, G],
    "/sprint start": ["H4", G, S.SPRINT_ACTIVE, "H5", G, G, G],
    "/sprint status": [G, G, G, SAME, SAME, G, SAME],
    "/sprint pause": [G, G, G, S.SPRINT_PAUSED, G, G, G],
    "/sprint resume": [G, G, G, G, S.SPRINT_ACTIVE, G, G],
    "/request_changes": [G, G, G, G, G, S.BACKLOG_READY, G],
    "/suggest_fix": [G, G, G, G, G, G, S.SPRINT_ACTIVE],
    "/skip_task": [G, G, G, G, G, G, S.SPRINT_ACTIVE],
    "/feedback": [G, G, G, G, G, S.IDLE, G],
    "/state": [SAME] * 7,
    "/backlog view": [SAME, SAME, SAME, SAME, SAME, "HB", SAME],
    "/backlog add_story": [SAME, SAME, SAME, SAME, SAME, "HB", SAME],
    "/backlog prioritize": [SAME, SAME, SAME, SAME, SAME, "HB", SAME],
    "/backlog remove": [SAME, SAME, SAME, SAME, SAME, "HB", SAME],
}

HINTS = {
    "H1": "Cannot create epic during active sprint. Use /sprint pause first.",
    "H2": "No items pending approval. Use /sprint status.",
    "H3": "Sprint already active. Use /sprint status or /sprint pause.",
    "H4": "No sprint planned. Use /epic then /sprint plan first.",
    "H5": "Sprint already active. Use /sprint status.",
}

# The generic hint lists allowed states in table order; written out by hand, not computed.
GENERIC = {
    "/epic": "Try when in states: IDLE, BACKLOG_READY",
    "/approve": "Try when in states: BACKLOG_READY",
    "/sprint plan": "Try when in states: BACKLOG_READY",
    "/sprint start": "Try when in states: SPRINT_PLANNED",
    "/sprint status": "Try when in states: SPRINT_ACTIVE, SPRINT_PAUSED, BLOCKED",
    "/sprint pause": "Try when in states: SPRINT_ACTIVE",
    "/sprint resume": "Try when in states: SPRINT_PAUSED",
    "/request_changes": "Try when in states: SPRINT_REVIEW",
    "/suggest_fix": "Try when in states: BLOCKED",
    "/skip_task": "Try when in states: BLOCKED",
    "/feedback": "Try when in states: SPRINT_REVIEW",
}

CASES = [(cmd, state, cell) for cmd, row in TABLE.items() for state, cell in zip(STATES, row, strict=True)]


def test_table_covers_every_command() -> None:
    assert set(TABLE) == set(TRANSITIONS) | set(BACKLOG_COMMANDS)
    assert len(CASES) == 16 * 7


@pytest.mark.parametrize(("command", "state", "cell"), CASES, ids=[f"{c}@{s.value}" for c, s, _ in CASES])
def test_transition_table(command: str, state: WorkflowState, cell: object) -> None:
    result = validate(command, state)
    if isinstance(cell, WorkflowState):
        assert result.ok and result.new_state is cell
    elif cell == SAME:
        assert result.ok and result.new_state is state
    elif cell == "HB":
        assert not result.ok
        assert result.error == "Backlog modifications not allowed during sprint review"
        assert result.hint == "Complete sprint review with /feedback or /request_changes first"
    else:
        assert not result.ok
        assert result.error == f"Command {command} not allowed in state {state.value}"
        assert result.hint == (GENERIC[command] if cell == G else HINTS[str(cell)])


def test_backlog_commands_match_by_prefix() -> None:
    assert validate("/backlog view sprint", S.IDLE).ok
    assert not validate("/backlog view sprint", S.SPRINT_REVIEW).ok


@pytest.mark.parametrize("command", ["/unknown", "/sprint", "/sprint plan AUTH-1", "/backlog", "/tdd start"])
def test_unknown_command(command: str) -> None:
    result = validate(command, S.IDLE)
    assert not result.ok
    assert result.error == f"Unknown command: {command}"
    assert result.hint == "Use /state to see available commands"


BACKLOG4 = ["/backlog add_story", "/backlog prioritize", "/backlog remove", "/backlog view"]
ALLOWED = {
    S.IDLE: [
        "/backlog add_story",
        "/backlog prioritize",
        "/backlog remove",
        "/backlog view",
        "/epic",
        "/state",
    ],
    S.BACKLOG_READY: ["/approve", *BACKLOG4, "/epic", "/sprint plan", "/state"],
    S.SPRINT_PLANNED: [*BACKLOG4, "/sprint start", "/state"],
    S.SPRINT_ACTIVE: [*BACKLOG4, "/sprint pause", "/sprint status", "/state"],
    S.SPRINT_PAUSED: [*BACKLOG4, "/sprint resume", "/sprint status", "/state"],
    S.SPRINT_REVIEW: ["/feedback", "/request_changes", "/state"],
    S.BLOCKED: [*BACKLOG4, "/skip_task", "/sprint status", "/state", "/suggest_fix"],
}


@pytest.mark.parametrize("state", STATES)
def test_allowed_commands(state: WorkflowState) -> None:
    assert allowed_commands(state) == ALLOWED[state]


def test_state_values_are_names() -> None:
    assert [s.value for s in WorkflowState] == [s.name for s in WorkflowState]
