"""The chat command grammar and the command catalog."""

from __future__ import annotations

from typing import Any

import pytest

from agent_portal.domain.commands import (
    ParseError,
    command_catalog,
    is_read_only,
    parse,
    suggestions,
)
from agent_portal.domain.workflow import TRANSITIONS, WorkflowState


@pytest.mark.parametrize(
    ("text", "key", "kwargs"),
    [
        ('/epic "Build auth system"', "/epic", {"description": "Build auth system"}),
        ("/epic Build the user's dashboard", "/epic", {"description": "Build the user's dashboard"}),
        ('/epic "Say \\"hi\\" politely"', "/epic", {"description": 'Say "hi" politely'}),
        ("/epic \u201cSmart quotes\u201d", "/epic", {"description": "Smart quotes"}),
        (
            '/epic --title Auth "Long description"',
            "/epic",
            {"title": "Auth", "description": "Long description"},
        ),
        ("/epic", "/epic", {}),
        ("/approve", "/approve", {"item_ids": []}),
        ("/approve id1 id2", "/approve", {"item_ids": ["id1", "id2"]}),
        ("/approve id1,id2, id3", "/approve", {"item_ids": ["id1", "id2", "id3"]}),
        ("/sprint plan AUTH-1 AUTH-2", "/sprint plan", {"story_ids": ["AUTH-1", "AUTH-2"]}),
        ("/sprint plan AUTH-1,AUTH-2", "/sprint plan", {"story_ids": ["AUTH-1", "AUTH-2"]}),
        ('/sprint plan --goal "Ship login"', "/sprint plan", {"story_ids": [], "goal": "Ship login"}),
        ("/sprint start", "/sprint start", {}),
        ("/SPRINT Status", "/sprint status", {}),
        ("/backlog view", "/backlog view", {}),
        ("/backlog view sprint", "/backlog view", {"backlog_type": "sprint"}),
        (
            '/backlog add_story "Login form" --feature epic-1a2b3c4d --priority 2',
            "/backlog add_story",
            {"description": "Login form", "epic_id": "epic-1a2b3c4d", "priority": 2},
        ),
        (
            '/backlog add_story "Login form" --priority=high',
            "/backlog add_story",
            {"description": "Login form", "priority": 2},
        ),
        (
            "/backlog add_story Login form --priority x",
            "/backlog add_story",
            {"description": "Login form", "priority": "x"},
        ),
        ("/backlog prioritize story-1 2", "/backlog prioritize", {"story_id": "story-1", "priority": 2}),
        ("/backlog prioritize story-1 top", "/backlog prioritize", {"story_id": "story-1", "priority": 1}),
        ("/backlog prioritize", "/backlog prioritize", {}),
        ("/backlog remove story-1", "/backlog remove", {"story_id": "story-1"}),
        (
            '/tdd start story-1 "desc here"',
            "/tdd start",
            {"story_id": "story-1", "task_description": "desc here"},
        ),
        (
            "/tdd start story-1 write the form",
            "/tdd start",
            {"story_id": "story-1", "task_description": "write the form"},
        ),
        ("/tdd status", "/tdd status", {}),
        ("/tdd status story-9", "/tdd status", {"story_id": "story-9"}),
        ("/tdd", "/tdd", {}),
        ("/tdd dance", "/tdd dance", {}),
        ('/feedback "Great sprint"', "/feedback", {"description": "Great sprint"}),
        ("/request_changes add remember-me", "/request_changes", {"description": "add remember-me"}),
        ("/suggest_fix use utc", "/suggest_fix", {"description": "use utc"}),
        ("  /state  ", "/state", {}),
        ("/frobnicate a b", "/frobnicate", {"args": ["a", "b"]}),
        ("/sprint", "/sprint", {}),
    ],
)
def test_parse(text: str, key: str, kwargs: dict[str, Any]) -> None:
    parsed = parse(text)
    assert parsed.key == key
    assert parsed.kwargs == kwargs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Empty command"),
        ("   ", "Empty command"),
        ("hello there", "Not a command: hello there"),
        ('/epic "never closed', "Unterminated quoted string"),
        ("/epic --colour red", "Unknown option --colour for /epic"),
        ("/backlog add_story x --priority", "Option --priority needs a value"),
        ("/sprint start now", "/sprint start takes no arguments"),
        ("/state everything", "/state takes no arguments"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.message == message


def test_parse_error_has_hint() -> None:
    with pytest.raises(ParseError) as info:
        parse("/epic --colour red")
    assert info.value.hint == "Options for /epic: --title, --description"


@pytest.mark.parametrize(
    ("key", "read_only"),
    [
        ("/state", True),
        ("/sprint status", True),
        ("/backlog view", True),
        ("/tdd status", True),
        ("/tdd logs", True),
        ("/tdd overview", True),
        ("/epic", False),
        ("/approve", False),
        ("/backlog add_story", False),
        ("/tdd start", False),
        ("/tdd run_tests", False),
        ("/sprint start", False),
    ],
)
def test_read_only(key: str, read_only: bool) -> None:
    assert is_read_only(key) is read_only


def test_catalog_has_every_workflow_command_with_category() -> None:
    catalog = {c.command: c for c in command_catalog()}
    for command in TRANSITIONS:
        assert command in catalog
    for info in catalog.values():
        assert info.category in {"workflow", "sprint", "backlog", "tdd", "project"}
        assert info.description
    entry = catalog["/sprint status"].to_dict()
    assert entry["available_in_state"] == ["SPRINT_ACTIVE", "SPRINT_PAUSED", "BLOCKED"]
    assert entry["read_only"] is True


def test_suggestions_filter_by_state_and_prefix() -> None:
    idle = [s["command"] for s in suggestions(WorkflowState.IDLE, "/sp")]
    assert idle == []
    active = [s["command"] for s in suggestions(WorkflowState.SPRINT_ACTIVE, "/sprint")]
    assert active == ["/sprint status", "/sprint pause"]
    review = {s["command"] for s in suggestions(WorkflowState.SPRINT_REVIEW)}
    assert "/backlog view" not in review and "/feedback" in review and "/tdd status" in review
    viewer = {s["command"] for s in suggestions(WorkflowState.IDLE, read_only_only=True)}
    assert viewer == {"/state", "/backlog view", "/tdd status", "/tdd logs", "/tdd overview"}
