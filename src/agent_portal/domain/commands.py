"""The chat command grammar: text such as ``/sprint plan AUTH-1 AUTH-2`` becomes a command key
(``"/sprint plan"``) and the keyword arguments of the domain page's handlers.

The parser only rejects what it cannot read (no leading ``/``, an unclosed quote, an unknown
``--option``, stray arguments to a command that takes none). Everything the handlers check
themselves (missing story id, bad priority, unknown command or sub-command) is passed through,
so users get the handlers' exact messages and hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_portal.domain.workflow import WorkflowState, allowed_states


class ParseError(ValueError):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class ParsedCommand:
    key: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class _Token:
    value: str
    quoted: bool


# Typographic quotes arrive from phones and macOS autocorrect; they mean the same as '"'.
_OPENING_QUOTES = {'"': '"', "\u201c": "\u201d", "'": "'"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        opener = text[i]
        # A quote opens a quoted token only at the start of a token, so words like
        # "user's" stay plain text.
        if opener in _OPENING_QUOTES:
            closer = _OPENING_QUOTES[opener]
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise ParseError(
                        "Unterminated quoted string", hint='Close the quote, e.g. /epic "Build auth system"'
                    )
                ch = text[i]
                if ch == "\\" and i + 1 < n and text[i + 1] in ('"', "'", "\\", "\u201d"):
                    chars.append(text[i + 1])
                    i += 2
                    continue
                if ch == closer or (closer == "\u201d" and ch == '"'):
                    i += 1
                    break
                chars.append(ch)
                i += 1
            tokens.append(_Token("".join(chars), quoted=True))
            continue
        start = i
        while i < n and not text[i].isspace():
            i += 1
        tokens.append(_Token(text[start:i], quoted=False))
    return tokens


_SUBCOMMAND_GROUPS = ("/sprint", "/backlog", "/tdd")
_DESCRIPTION_COMMANDS = ("/epic", "/request_changes", "/suggest_fix", "/feedback", "/backlog add_story")
_NO_ARGUMENT_COMMANDS = (
    "/sprint start",
    "/sprint status",
    "/sprint pause",
    "/sprint resume",
    "/skip_task",
    "/state",
    "/tdd overview",
)
_TDD_STORY_ACTIONS = (
    "status",
    "next",
    "abort",
    "logs",
    "design",
    "test",
    "code",
    "refactor",
    "commit",
    "run_tests",
)

_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "/epic": {"title": "title", "description": "description"},
    "/backlog add_story": {
        "feature": "epic_id",
        "epic": "epic_id",
        "priority": "priority",
        "title": "title",
        "description": "description",
    },
    "/sprint plan": {"goal": "goal"},
}

PRIORITY_WORDS: Mapping[str, int] = {
    "top": 1,
    "highest": 1,
    "high": 2,
    "med": 3,
    "medium": 3,
    "low": 4,
    "lowest": 5,
}

READ_ONLY_COMMANDS = frozenset(
    {"/state", "/sprint status", "/backlog view", "/tdd status", "/tdd logs", "/tdd overview"}
)


def is_read_only(key: str) -> bool:
    """Viewers may run these (decisions §2)."""
    return key in READ_ONLY_COMMANDS


def parse_priority(value: str) -> int | str:
    """An int 1–5 or one of the documented words; anything else is returned as given so the
    handler can answer with its own message."""
    word = value.strip().lower()
    if word in PRIORITY_WORDS:
        return PRIORITY_WORDS[word]
    try:
        return int(word)
    except ValueError:
        return value


def _split_ids(tokens: list[_Token]) -> list[str]:
    ids: list[str] = []
    for token in tokens:
        ids.extend(part.strip() for part in token.value.split(",") if part.strip())
    return ids


def _join(tokens: list[_Token]) -> str:
    return " ".join(t.value for t in tokens).strip()


def parse(text: str) -> ParsedCommand:
    stripped = text.strip()
    if not stripped:
        raise ParseError("Empty command", hint="Commands start with /, e.g. /state")
    if not stripped.startswith("/"):
        raise ParseError(f"Not a command: {stripped[:40]}", hint="Commands start with /, e.g. /state")
    tokens = _tokenize(stripped)
    head = tokens[0].value.lower()
    rest = tokens[1:]
    key = head
    if head in _SUBCOMMAND_GROUPS and rest and not rest[0].quoted and not rest[0].value.startswith("--"):
        key = f"{head} {rest[0].value.lower()}"
        rest = rest[1:]

    positional: list[_Token] = []
    kwargs: dict[str, Any] = {}
    options = _OPTIONS.get(key, {})
    i = 0
    while i < len(rest):
        token = rest[i]
        if token.quoted or not token.value.startswith("--") or token.value == "--":
            positional.append(token)
            i += 1
            continue
        name, has_value, inline = token.value[2:].partition("=")
        kwarg = options.get(name.lower())
        if kwarg is None:
            known = ", ".join(f"--{o}" for o in options) or "none"
            raise ParseError(f"Unknown option --{name} for {key}", hint=f"Options for {key}: {known}")
        if has_value:
            value = inline
        elif i + 1 < len(rest):
            value = rest[i + 1].value
            i += 1
        else:
            raise ParseError(f"Option --{name} needs a value")
        kwargs[kwarg] = parse_priority(value) if kwarg == "priority" else value
        i += 1

    kwargs.update(_positional_kwargs(key, positional))
    return ParsedCommand(key=key, kwargs=kwargs, text=stripped)


def _positional_kwargs(key: str, positional: list[_Token]) -> dict[str, Any]:
    if key in _NO_ARGUMENT_COMMANDS:
        if positional:
            raise ParseError(f"{key} takes no arguments", hint=f"Use: {key}")
        return {}
    if key in _DESCRIPTION_COMMANDS:
        return {"description": _join(positional)} if positional else {}
    if key == "/approve":
        return {"item_ids": _split_ids(positional)}
    if key == "/sprint plan":
        return {"story_ids": _split_ids(positional)}
    if key == "/backlog view":
        return {"backlog_type": positional[0].value.lower()} if positional else {}
    if key == "/backlog prioritize":
        out: dict[str, Any] = {}
        if positional:
            out["story_id"] = positional[0].value
        if len(positional) > 1:
            out["priority"] = parse_priority(positional[1].value)
        return out
    if key == "/backlog remove":
        return {"story_id": positional[0].value} if positional else {}
    if key == "/tdd start":
        out = {}
        if positional:
            out["story_id"] = positional[0].value
        if len(positional) > 1:
            out["task_description"] = _join(positional[1:])
        return out
    if key.startswith("/tdd ") and key[5:] in _TDD_STORY_ACTIONS:
        return {"story_id": positional[0].value} if positional else {}
    return {"args": [t.value for t in positional]} if positional else {}


@dataclass(frozen=True)
class CommandInfo:
    command: str
    usage: str
    description: str
    parameters: tuple[str, ...]
    category: str  # workflow | sprint | backlog | tdd | project

    @property
    def read_only(self) -> bool:
        return is_read_only(self.command)

    def available_in(self) -> list[WorkflowState]:
        # /tdd and /state skip the workflow check, so they work in every state.
        if self.command.startswith("/tdd") or self.command == "/state":
            return list(WorkflowState)
        return allowed_states(self.command)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "usage": self.usage,
            "description": self.description,
            "parameters": list(self.parameters),
            "available_in_state": [s.value for s in self.available_in()],
            "category": self.category,
            "read_only": self.read_only,
        }


_CATALOG: tuple[CommandInfo, ...] = (
    CommandInfo(
        "/epic",
        '/epic "<description>"',
        "Create an epic; DesignAgent proposes its stories",
        ("description",),
        "workflow",
    ),
    CommandInfo(
        "/approve",
        "/approve [ID ...]",
        "Approve pending items (all when no ID is given)",
        ("item_ids",),
        "workflow",
    ),
    CommandInfo(
        "/sprint plan",
        "/sprint plan [STORY_ID ...] [--goal TEXT]",
        "Plan a sprint from the given stories, or the top of the backlog",
        ("story_ids", "goal"),
        "sprint",
    ),
    CommandInfo(
        "/sprint start", "/sprint start", "Start the planned sprint; agents begin work", (), "sprint"
    ),
    CommandInfo("/sprint status", "/sprint status", "Show sprint progress", (), "sprint"),
    CommandInfo("/sprint pause", "/sprint pause", "Pause agent work", (), "sprint"),
    CommandInfo("/sprint resume", "/sprint resume", "Resume agent work", (), "sprint"),
    CommandInfo(
        "/backlog view",
        "/backlog view [product|sprint]",
        "Show the product or sprint backlog",
        ("backlog_type",),
        "backlog",
    ),
    CommandInfo(
        "/backlog add_story",
        '/backlog add_story "<description>" [--feature EPIC_ID] [--priority 1-5]',
        "Add a story to the product backlog",
        ("description", "epic_id", "priority"),
        "backlog",
    ),
    CommandInfo(
        "/backlog prioritize",
        "/backlog prioritize <STORY_ID> <1-5|top|high|medium|low>",
        "Change a story's priority",
        ("story_id", "priority"),
        "backlog",
    ),
    CommandInfo(
        "/backlog remove",
        "/backlog remove <STORY_ID>",
        "Remove a story from the product backlog",
        ("story_id",),
        "backlog",
    ),
    CommandInfo(
        "/request_changes",
        '/request_changes "<description>"',
        "Close the review and put the requested changes on the backlog",
        ("description",),
        "workflow",
    ),
    CommandInfo(
        "/suggest_fix",
        '/suggest_fix "<description>"',
        "Retry the blocked task with a suggested fix",
        ("description",),
        "workflow",
    ),
    CommandInfo("/skip_task", "/skip_task", "Skip the blocked task and continue the sprint", (), "workflow"),
    CommandInfo(
        "/feedback",
        '/feedback "<description>"',
        "Record sprint feedback and finish the sprint",
        ("description",),
        "workflow",
    ),
    CommandInfo("/state", "/state", "Show the workflow state and the commands allowed now", (), "project"),
    CommandInfo(
        "/tdd start",
        '/tdd start <STORY_ID> ["<task description>"]',
        "Start a TDD cycle for a story",
        ("story_id", "task_description"),
        "tdd",
    ),
    CommandInfo("/tdd status", "/tdd status [STORY_ID]", "Show the TDD cycle", ("story_id",), "tdd"),
    CommandInfo(
        "/tdd next", "/tdd next [STORY_ID]", "Advance the cycle to its next phase", ("story_id",), "tdd"
    ),
    CommandInfo("/tdd abort", "/tdd abort [STORY_ID]", "Abort the TDD cycle", ("story_id",), "tdd"),
    CommandInfo(
        "/tdd logs", "/tdd logs [STORY_ID]", "Show the cycle's recent activity", ("story_id",), "tdd"
    ),
    CommandInfo("/tdd overview", "/tdd overview", "Summarise all TDD cycles of the project", (), "tdd"),
    CommandInfo("/tdd design", "/tdd design [STORY_ID]", "Work on the design phase", ("story_id",), "tdd"),
    CommandInfo("/tdd test", "/tdd test [STORY_ID]", "Write failing tests (red)", ("story_id",), "tdd"),
    CommandInfo(
        "/tdd code", "/tdd code [STORY_ID]", "Implement until tests pass (green)", ("story_id",), "tdd"
    ),
    CommandInfo(
        "/tdd refactor", "/tdd refactor [STORY_ID]", "Refactor with tests green", ("story_id",), "tdd"
    ),
    CommandInfo("/tdd commit", "/tdd commit [STORY_ID]", "Commit the cycle's work", ("story_id",), "tdd"),
    CommandInfo(
        "/tdd run_tests", "/tdd run_tests [STORY_ID]", "Run the project's tests", ("story_id",), "tdd"
    ),
)


def command_catalog() -> list[CommandInfo]:
    return list(_CATALOG)


def suggestions(
    state: WorkflowState, prefix: str = "", *, read_only_only: bool = False
) -> list[dict[str, Any]]:
    """Autocomplete entries valid in ``state`` whose command starts with ``prefix``."""
    return [
        info.to_dict()
        for info in _CATALOG
        if state in info.available_in()
        and info.command.startswith(prefix.strip().lower())
        and (info.read_only or not read_only_only)
    ]
