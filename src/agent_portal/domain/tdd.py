"""The TDD cycle state machine (domain page §3): transitions, their conditions, and the hints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent_portal.domain.models import TDDCycle, TDDState, TDDTask

T = TDDState
_ALL = tuple(TDDState)

TDD_TRANSITIONS: Mapping[str, Mapping[TDDState, TDDState]] = {
    "/tdd start": {state: T.DESIGN for state in _ALL},
    "/tdd design": {T.DESIGN: T.DESIGN},
    "/tdd test": {T.DESIGN: T.TEST_RED, T.TEST_RED: T.TEST_RED},
    "/tdd code": {T.TEST_RED: T.CODE_GREEN, T.CODE_GREEN: T.CODE_GREEN},
    "/tdd refactor": {T.CODE_GREEN: T.REFACTOR, T.REFACTOR: T.REFACTOR},
    "/tdd commit": {T.CODE_GREEN: T.COMMIT, T.REFACTOR: T.COMMIT},
    "/tdd next": {
        T.DESIGN: T.TEST_RED,
        T.TEST_RED: T.CODE_GREEN,
        T.CODE_GREEN: T.REFACTOR,
        T.REFACTOR: T.COMMIT,
        T.COMMIT: T.DESIGN,
    },
    "/tdd status": {state: state for state in _ALL},
    "/tdd abort": {state: T.COMMIT for state in _ALL},
    "/tdd run_tests": {state: state for state in _ALL},
    "/tdd commit-tests": {T.TEST_RED: T.CODE_GREEN},
    "/tdd commit-code": {T.CODE_GREEN: T.REFACTOR},
    "/tdd commit-refactor": {T.REFACTOR: T.COMMIT},
}

# Verbatim from TDDStateMachine.ERROR_HINTS of the reference orchestrator (lib/tdd_state_machine.py).
TDD_ERROR_HINTS: Mapping[tuple[str, TDDState], str] = {
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
    ("/tdd commit-tests", T.REFACTOR): (
        "Tests already committed. Use /tdd commit-refactor to commit refactored code."
    ),
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

TDD_CONDITIONS: Mapping[str, Mapping[TDDState, tuple[str, ...]]] = {
    "/tdd code": {T.TEST_RED: ("has_failing_tests",)},
    "/tdd refactor": {T.CODE_GREEN: ("has_passing_tests",)},
    "/tdd commit": {T.CODE_GREEN: ("has_passing_tests",), T.REFACTOR: ("has_passing_tests",)},
    "/tdd commit-tests": {T.TEST_RED: ("has_failing_tests", "has_test_files")},
    "/tdd commit-code": {T.CODE_GREEN: ("has_passing_tests", "has_committed_tests")},
    "/tdd commit-refactor": {T.REFACTOR: ("has_passing_tests", "has_committed_tests")},
}

UNKNOWN_TDD_COMMAND_HINT = "Use /tdd status to see available commands"

SUGGESTED_NEXT: Mapping[TDDState, str] = {
    T.DESIGN: "/tdd test",
    T.TEST_RED: "/tdd commit-tests",
    T.CODE_GREEN: "/tdd commit-code",
    T.REFACTOR: "/tdd commit-refactor",
    T.COMMIT: "/tdd start",
}

_CHECKS: Mapping[str, Callable[[TDDTask], bool]] = {
    "has_failing_tests": TDDTask.has_failing_tests,
    "has_passing_tests": TDDTask.has_passing_tests,
    "has_test_files": lambda task: bool(task.test_file_objects),
    "has_committed_tests": lambda task: bool(task.committed_test_files()),
}


@dataclass(frozen=True)
class TDDValidation:
    ok: bool
    new_state: TDDState | None = None
    error: str | None = None
    hint: str | None = None


def check_condition(condition: str, task: TDDTask) -> bool:
    check = _CHECKS.get(condition)
    # An unknown condition does not block, as in the reference.
    return True if check is None else check(task)


def condition_hint(condition: str, task: TDDTask) -> str:
    if condition == "has_failing_tests":
        if not task.test_results:
            return "Write and run tests first using /tdd test and /tdd run_tests"
        return "Tests are passing. Write more specific tests or ensure they fail initially"
    if condition == "has_passing_tests":
        if not task.test_results:
            return "No test results found. Run tests with /tdd run_tests"
        return "Tests are still failing. Fix implementation until tests pass"
    if condition == "has_test_files":
        return "No test files found. Create test files using /tdd test"
    if condition == "has_committed_tests":
        if not task.test_file_objects:
            return "No test files found. Create and commit test files first"
        return "Test files not committed yet. Use /tdd commit-tests to commit them"
    return f"Condition '{condition}' not met"


def validate_tdd(command: str, state: TDDState, task: TDDTask | None = None) -> TDDValidation:
    """``task`` is the cycle's current task; conditions are checked only when there is one."""
    targets = TDD_TRANSITIONS.get(command)
    if targets is None:
        return TDDValidation(False, error=f"Unknown TDD command: {command}", hint=UNKNOWN_TDD_COMMAND_HINT)
    if state not in targets:
        hint = TDD_ERROR_HINTS.get((command, state))
        if hint is None:
            hint = "Try when in states: " + ", ".join(s.value for s in targets)
        return TDDValidation(
            False, error=f"Command {command} not allowed in TDD state {state.value}", hint=hint
        )
    if task is not None:
        for condition in TDD_CONDITIONS.get(command, {}).get(state, ()):
            if not check_condition(condition, task):
                return TDDValidation(
                    False,
                    error=f"Condition not met for {command}: {condition}",
                    hint=condition_hint(condition, task),
                )
    return TDDValidation(True, new_state=targets[state])


def validate_for_cycle(command: str, cycle: TDDCycle) -> TDDValidation:
    return validate_tdd(command, cycle.current_state, cycle.current_task())


def allowed_tdd_commands(state: TDDState, task: TDDTask | None = None) -> list[str]:
    return sorted(command for command in TDD_TRANSITIONS if validate_tdd(command, state, task).ok)


def suggested_next(state: TDDState, task: TDDTask | None = None) -> str:
    suggestion = SUGGESTED_NEXT[state]
    if suggestion in allowed_tdd_commands(state, task):
        return suggestion
    return "/tdd next"
