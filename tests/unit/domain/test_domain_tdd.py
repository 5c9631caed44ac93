"""The TDD state machine as a full table (domain page §3), its conditions and hints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_portal.domain.models import (
    TDDState,
    TDDTask,
    TestFile,
    TestFileStatus,
    TestResult,
    TestStatus,
)
from agent_portal.domain.tdd import (
    TDD_ERROR_HINTS,
    TDD_TRANSITIONS,
    allowed_tdd_commands,
    suggested_next,
    validate_tdd,
)

T = TDDState
STATES = [T.DESIGN, T.TEST_RED, T.CODE_GREEN, T.REFACTOR, T.COMMIT]
NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
X = "x"  # rejected

# Columns: design, test_red, code_green, refactor, commit (domain page §3). A cell is the
# resulting state, or X for a rejection.
TABLE: dict[str, list[object]] = {
    "/tdd start": [T.DESIGN] * 5,
    "/tdd design": [T.DESIGN, X, X, X, X],
    "/tdd test": [T.TEST_RED, T.TEST_RED, X, X, X],
    "/tdd code": [X, T.CODE_GREEN, T.CODE_GREEN, X, X],
    "/tdd refactor": [X, X, T.REFACTOR, T.REFACTOR, X],
    "/tdd commit": [X, X, T.COMMIT, T.COMMIT, X],
    "/tdd next": [T.TEST_RED, T.CODE_GREEN, T.REFACTOR, T.COMMIT, T.DESIGN],
    "/tdd status": [*STATES],
    "/tdd run_tests": [*STATES],
    "/tdd abort": [T.COMMIT] * 5,
    "/tdd commit-tests": [X, T.CODE_GREEN, X, X, X],
    "/tdd commit-code": [X, X, T.REFACTOR, X, X],
    "/tdd commit-refactor": [X, X, X, T.COMMIT, X],
}

# The 20 specific hints, verbatim from the reference's TDDStateMachine.ERROR_HINTS.
SPECIFIC = {
    (
        "/tdd test",
        T.CODE_GREEN,
    ): "Tests already written. Use /tdd run_tests to verify or /tdd refactor to improve.",
    ("/tdd test", T.REFACTOR): "Already in refactor phase. Use /tdd run_tests or /tdd commit.",
    ("/tdd code", T.DESIGN): "Write failing tests first with /tdd test.",
    ("/tdd code", T.REFACTOR): "Already implemented. Use /tdd refactor to improve or /tdd commit.",
    ("/tdd refactor", T.DESIGN): "Need to write tests and implement code first.",
    ("/tdd refactor", T.TEST_RED): "Make tests pass first with /tdd code.",
    ("/tdd commit", T.DESIGN): "Complete the TDD cycle first (design → test → code).",
    ("/tdd commit", T.TEST_RED): "Make tests pass first with /tdd code.",
    ("/tdd commit-tests", T.DESIGN): "Write failing tests first with /tdd test.",
    (
        "/tdd commit-tests",
        T.CODE_GREEN,
    ): "Tests already committed. Use /tdd commit-code to commit implementation.",
    (
        "/tdd commit-tests",
        T.REFACTOR,
    ): "Tests already committed. Use /tdd commit-refactor to commit refactored code.",
    ("/tdd commit-tests", T.COMMIT): "Tests already committed. Start new cycle with /tdd start.",
    ("/tdd commit-code", T.DESIGN): "Write and commit tests first.",
    ("/tdd commit-code", T.TEST_RED): "Tests not committed yet. Use /tdd commit-tests first.",
    ("/tdd commit-code", T.REFACTOR): "Code already committed. Use /tdd commit-refactor for refactored code.",
    ("/tdd commit-code", T.COMMIT): "Code already committed. Start new cycle with /tdd start.",
    ("/tdd commit-refactor", T.DESIGN): "Complete TDD cycle first (design → test → code → refactor).",
    ("/tdd commit-refactor", T.TEST_RED): "Write code to make tests pass first.",
    ("/tdd commit-refactor", T.CODE_GREEN): "Code not committed yet. Use /tdd commit-code first.",
    ("/tdd commit-refactor", T.COMMIT): "Refactoring already committed. Start new cycle with /tdd start.",
}
GENERIC = {
    ("/tdd design", T.TEST_RED): "Try when in states: design",
    ("/tdd design", T.CODE_GREEN): "Try when in states: design",
    ("/tdd design", T.REFACTOR): "Try when in states: design",
    ("/tdd design", T.COMMIT): "Try when in states: design",
    ("/tdd test", T.COMMIT): "Try when in states: design, test_red",
    ("/tdd code", T.COMMIT): "Try when in states: test_red, code_green",
    ("/tdd refactor", T.COMMIT): "Try when in states: code_green, refactor",
    ("/tdd commit", T.COMMIT): "Try when in states: code_green, refactor",
}

CASES = [(cmd, state, cell) for cmd, row in TABLE.items() for state, cell in zip(STATES, row, strict=True)]


def test_table_covers_every_command() -> None:
    assert set(TABLE) == set(TDD_TRANSITIONS)
    assert len(SPECIFIC) == 20 and dict(TDD_ERROR_HINTS) == SPECIFIC


@pytest.mark.parametrize(("command", "state", "cell"), CASES, ids=[f"{c}@{s.value}" for c, s, _ in CASES])
def test_transition_table_without_task(command: str, state: TDDState, cell: object) -> None:
    # Without a current task no condition is checked (as in the reference).
    result = validate_tdd(command, state, None)
    if cell == X:
        assert not result.ok
        assert result.error == f"Command {command} not allowed in TDD state {state.value}"
        assert result.hint == SPECIFIC.get((command, state), GENERIC.get((command, state)))
        assert result.hint is not None
    else:
        assert result.ok and result.new_state is cell


def test_every_rejection_has_an_expected_hint() -> None:
    rejections = {(c, s) for c, s, cell in CASES if cell == X}
    assert rejections == set(SPECIFIC) | set(GENERIC)


def test_unknown_tdd_command() -> None:
    result = validate_tdd("/tdd dance", T.DESIGN)
    assert (result.ok, result.error, result.hint) == (
        False,
        "Unknown TDD command: /tdd dance",
        "Use /tdd status to see available commands",
    )


def _result(name: str, status: TestStatus) -> TestResult:
    return TestResult(
        id=f"test-{name}", test_file="tests/test_x.py", test_name=name, status=status, timestamp=NOW
    )


def _task(*results: TestResult, files: list[TestFileStatus] | None = None) -> TDDTask:
    task = TDDTask(id="tdd-task-00000001", cycle_id="tdd-cycle-00000001", description="d", started_at=NOW)
    task.test_results.extend(results)
    for i, status in enumerate(files or []):
        task.test_file_objects.append(
            TestFile(
                id=f"testfile-{i}",
                file_path=f"/p/t{i}.py",
                relative_path=f"t{i}.py",
                story_id="s",
                task_id=task.id,
                created_at=NOW,
                status=status,
            )
        )
    return task


RED = _result("a", TestStatus.RED)
GREEN = _result("a", TestStatus.GREEN)

CONDITION_CASES = [
    (
        "/tdd code",
        T.TEST_RED,
        _task(),
        "has_failing_tests",
        "Write and run tests first using /tdd test and /tdd run_tests",
    ),
    (
        "/tdd code",
        T.TEST_RED,
        _task(GREEN),
        "has_failing_tests",
        "Tests are passing. Write more specific tests or ensure they fail initially",
    ),
    (
        "/tdd refactor",
        T.CODE_GREEN,
        _task(),
        "has_passing_tests",
        "No test results found. Run tests with /tdd run_tests",
    ),
    (
        "/tdd refactor",
        T.CODE_GREEN,
        _task(RED),
        "has_passing_tests",
        "Tests are still failing. Fix implementation until tests pass",
    ),
    (
        "/tdd commit",
        T.CODE_GREEN,
        _task(RED),
        "has_passing_tests",
        "Tests are still failing. Fix implementation until tests pass",
    ),
    (
        "/tdd commit",
        T.REFACTOR,
        _task(),
        "has_passing_tests",
        "No test results found. Run tests with /tdd run_tests",
    ),
    (
        "/tdd commit-tests",
        T.TEST_RED,
        _task(RED),
        "has_test_files",
        "No test files found. Create test files using /tdd test",
    ),
    (
        "/tdd commit-code",
        T.CODE_GREEN,
        _task(GREEN),
        "has_committed_tests",
        "No test files found. Create and commit test files first",
    ),
    (
        "/tdd commit-refactor",
        T.REFACTOR,
        _task(GREEN, files=[TestFileStatus.DRAFT]),
        "has_committed_tests",
        "Test files not committed yet. Use /tdd commit-tests to commit them",
    ),
]


@pytest.mark.parametrize(("command", "state", "task", "condition", "hint"), CONDITION_CASES)
def test_conditions_refuse_with_hint(
    command: str, state: TDDState, task: TDDTask, condition: str, hint: str
) -> None:
    result = validate_tdd(command, state, task)
    assert not result.ok
    assert result.error == f"Condition not met for {command}: {condition}"
    assert result.hint == hint


@pytest.mark.parametrize(
    ("command", "state", "task", "target"),
    [
        ("/tdd code", T.TEST_RED, _task(RED), T.CODE_GREEN),
        ("/tdd refactor", T.CODE_GREEN, _task(GREEN), T.REFACTOR),
        ("/tdd commit", T.REFACTOR, _task(GREEN), T.COMMIT),
        ("/tdd commit-tests", T.TEST_RED, _task(RED, files=[TestFileStatus.DRAFT]), T.CODE_GREEN),
        ("/tdd commit-code", T.CODE_GREEN, _task(GREEN, files=[TestFileStatus.COMMITTED]), T.REFACTOR),
        ("/tdd commit-refactor", T.REFACTOR, _task(GREEN, files=[TestFileStatus.PASSING]), T.COMMIT),
    ],
)
def test_conditions_met(command: str, state: TDDState, task: TDDTask, target: TDDState) -> None:
    result = validate_tdd(command, state, task)
    assert result.ok and result.new_state is target


def test_latest_result_per_test_decides() -> None:
    later = TestResult(
        id="test-b",
        test_file="tests/test_x.py",
        test_name="a",
        status=TestStatus.GREEN,
        timestamp=NOW.replace(minute=5),
    )
    task = _task(RED, later)
    assert task.has_passing_tests() and not task.has_failing_tests()


def test_values_are_lowercase() -> None:
    assert [s.value for s in TDDState] == ["design", "test_red", "code_green", "refactor", "commit"]


@pytest.mark.parametrize(
    ("state", "task", "expected"),
    [
        (T.DESIGN, None, "/tdd test"),
        (T.TEST_RED, None, "/tdd commit-tests"),
        (T.CODE_GREEN, None, "/tdd commit-code"),
        (T.REFACTOR, None, "/tdd commit-refactor"),
        (T.COMMIT, None, "/tdd start"),
        # commit-tests needs test files: falls back to /tdd next.
        (T.TEST_RED, _task(RED), "/tdd next"),
    ],
)
def test_suggested_next(state: TDDState, task: TDDTask | None, expected: str) -> None:
    assert suggested_next(state, task) == expected


def test_allowed_commands_in_design() -> None:
    assert allowed_tdd_commands(T.DESIGN) == [
        "/tdd abort",
        "/tdd design",
        "/tdd next",
        "/tdd run_tests",
        "/tdd start",
        "/tdd status",
        "/tdd test",
    ]


def test_allowed_commands_respect_conditions() -> None:
    assert "/tdd code" in allowed_tdd_commands(T.TEST_RED, _task(RED))
    assert "/tdd code" not in allowed_tdd_commands(T.TEST_RED, _task(GREEN))
