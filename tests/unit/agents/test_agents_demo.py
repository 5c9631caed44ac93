"""The demo backend: deterministic, labelled, and shaped so the real domain accepts every phase."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from agents_fakes import RecordingReporter, phase_work

from agent_portal.agents.base import AgentContext, AgentResult
from agent_portal.agents.demo import DemoBackend, demo_tests, propose_stories
from agent_portal.domain.models import AgentType, AgentWork, OrchestrationMode, TDDState, TestStatus
from agent_portal.domain.service import OrchestratorService, new_project
from agent_portal.domain.workflow import WorkflowState

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONTEXT = AgentContext(project_path=None, timeout_seconds=30)


def _backend() -> DemoBackend:
    return DemoBackend(step_delay=0, clock=lambda: T0)


async def _run(work: AgentWork) -> tuple[AgentResult, RecordingReporter]:
    reporter = RecordingReporter()
    result = await _backend().run(work, CONTEXT, reporter)
    return result, reporter


def _keys(result: AgentResult) -> list[tuple[str, str]]:
    return [(r.test_file, r.test_name) for r in result.test_results]


@pytest.mark.parametrize("phase", [*TDDState, None])
async def test_same_work_gives_the_same_output(phase: TDDState | None) -> None:
    first, first_reporter = await _run(phase_work(phase))
    second, second_reporter = await _run(phase_work(phase))
    assert first == second
    assert first_reporter.outputs == second_reporter.outputs


@pytest.mark.parametrize("phase", list(TDDState))
async def test_progress_steps_and_every_line_says_demo(phase: TDDState) -> None:
    result, reporter = await _run(phase_work(phase))
    assert reporter.progress_values == [0, 25, 50, 75, 100]
    assert reporter.outputs
    for stream, text in reporter.outputs:
        assert stream in {"stdout", "test_result"}
        assert text.startswith("[demo] ") and text.endswith("\n") and text.count("\n") == 1
    assert "demo" in result.output.lower()
    assert all(r.id.startswith("test-") and len(r.id) == 13 for r in result.test_results)


async def test_design_writes_notes_without_tests() -> None:
    result, reporter = await _run(phase_work(TDDState.DESIGN, agent_type=AgentType.DESIGN))
    assert result.success and not result.test_results and result.metrics is None
    assert "Design notes for 'User can log in with email'" in result.output
    assert any("Planned test: test_user_can_log_in_" in line for line in reporter.lines("stdout"))


async def test_test_red_writes_failing_tests_that_code_green_makes_pass() -> None:
    red, red_reporter = await _run(phase_work(TDDState.TEST_RED))
    green, _ = await _run(phase_work(TDDState.CODE_GREEN, task_id="task-00000002", agent_type=AgentType.CODE))

    assert red.success, "writing failing tests is the goal of test_red"
    assert 2 <= len(red.test_results) <= 4
    assert all(r.status is TestStatus.RED for r in red.test_results)
    assert all(r.error_message and r.error_message.startswith("[demo] ") for r in red.test_results)
    assert all(r.test_file == "tests/tdd/story-00000001/test_user_can_log_in.py" for r in red.test_results)
    assert any(line.startswith("[demo] E   ") for line in red_reporter.lines("stdout"))
    assert any(f"{len(red.test_results)} failed in" in line for line in red_reporter.lines("stdout"))
    assert [line.split()[1] for line in red_reporter.lines("test_result")] == ["red"] * len(red.test_results)

    assert green.success
    assert all(r.status is TestStatus.GREEN and r.error_message is None for r in green.test_results)
    # The domain compares results by (file, name): the tests that failed are the ones that now pass.
    assert _keys(green) == _keys(red)
    assert {r.id for r in green.test_results}.isdisjoint(r.id for r in red.test_results)


async def test_refactor_stays_green_and_improves_the_metrics() -> None:
    green, _ = await _run(phase_work(TDDState.CODE_GREEN))
    refactored, _ = await _run(phase_work(TDDState.REFACTOR))
    assert refactored.success and all(r.status is TestStatus.GREEN for r in refactored.test_results)
    assert green.metrics is not None and refactored.metrics is not None
    assert refactored.metrics.maintainability > green.metrics.maintainability
    assert refactored.metrics.complexity < green.metrics.complexity
    assert refactored.metrics.duplication < green.metrics.duplication
    assert 0 <= refactored.metrics.coverage <= 100


async def test_commit_writes_a_commit_message() -> None:
    result, reporter = await _run(phase_work(TDDState.COMMIT, agent_type=AgentType.CODE))
    assert result.success and not result.test_results
    assert result.output.startswith("Demo commit ")
    assert "feat(story-00000001): User can log in with email" in result.output
    assert reporter.lines("stdout")[0].startswith("[demo] commit ")


@pytest.mark.parametrize(
    ("phase", "status", "success"),
    [
        (TDDState.TEST_RED, TestStatus.RED, False),
        (TDDState.CODE_GREEN, TestStatus.GREEN, True),
        (TDDState.REFACTOR, TestStatus.GREEN, True),
        (TDDState.COMMIT, TestStatus.GREEN, True),
    ],
)
async def test_run_tests_follows_the_phase(phase: TDDState, status: TestStatus, success: bool) -> None:
    work = phase_work(phase, kind="run_tests", task_id="run-00000009", command="run_tests")
    result, _ = await _run(work)
    assert result.test_results and {r.status for r in result.test_results} == {status}
    assert result.success is success
    assert result.output.startswith("Demo test run")
    # Same story, same tests, whichever way the run was asked for.
    red, _ = await _run(phase_work(TDDState.TEST_RED))
    assert _keys(result) == _keys(red)


async def test_run_tests_in_design_finds_no_tests() -> None:
    result, reporter = await _run(phase_work(TDDState.DESIGN, kind="run_tests", command="run_tests"))
    assert not result.success and not result.test_results
    assert any("no tests ran" in line for line in reporter.lines("stdout"))


async def test_different_stories_get_different_tests() -> None:
    names = {
        tuple(t.name for t in demo_tests(f"story-{i:08x}", title))
        for i, title in enumerate(["Login", "Logout", "Reset password", "Profile page", "Search"])
    }
    assert len(names) == 5


def test_epic_with_several_clauses_becomes_those_stories() -> None:
    stories = propose_stories(
        "Users can register with email, log in with a password; reset a forgotten password"
    )
    assert [s["title"] for s in stories] == [
        "Users can register with email",
        "Log in with a password",
        "Reset a forgotten password",
    ]
    assert [s["priority"] for s in stories] == [1, 2, 3]
    assert all(s["description"].startswith("[demo] ") for s in stories)
    assert all(len(s["acceptance_criteria"]) == 2 for s in stories)


@pytest.mark.parametrize("epic", ["Shopping cart", "Payments", "Build auth system", "Reports", "Search"])
def test_short_epic_gets_two_or_three_stories_about_it(epic: str) -> None:
    stories = propose_stories(epic)
    assert 2 <= len(stories) <= 3
    assert all(epic.lower() in s["title"].lower() for s in stories)
    assert stories == propose_stories(epic)


async def test_epic_decomposition_task_proposes_stories() -> None:
    work = AgentWork(
        project_name="demo",
        task_id="task-00000001",
        agent_type=AgentType.DESIGN,
        command="Decompose epic into user stories: Shopping cart",
        context={"epic_id": "epic-00000001", "epic_description": "Shopping cart"},
    )
    result, reporter = await _run(work)
    assert result.success and result.proposed_stories == tuple(propose_stories("Shopping cart"))
    assert result.output.startswith(f"Demo DesignAgent proposed {len(result.proposed_stories)} stories")
    assert len(reporter.lines("stdout")) == len(result.proposed_stories)


async def test_step_delay_paces_the_work() -> None:
    began = time.perf_counter()
    await DemoBackend(step_delay=0.05).run(phase_work(TDDState.DESIGN), CONTEXT, RecordingReporter())
    assert time.perf_counter() - began >= 0.2


class _Clock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        self.current += timedelta(milliseconds=250)
        return self.current


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def new(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count:08x}"


async def test_the_domain_accepts_a_whole_demo_sprint() -> None:
    """What the embedded orchestrator does with demo results, from /epic to SPRINT_REVIEW."""
    clock = _Clock()
    service = OrchestratorService(clock, _Ids())
    backend = DemoBackend(step_delay=0, clock=clock.now)
    project = new_project("demo", OrchestrationMode.AUTONOMOUS)

    queue = list(
        service.handle(project, '/epic "Users can register with email, log in with a password"').work
    )
    runs = 0
    while True:
        if not queue:
            if project.state is WorkflowState.BACKLOG_READY:
                assert service.handle(project, "/sprint plan").success
                start = service.handle(project, "/sprint start")
                assert start.success
                queue += start.work
                continue
            break
        work = queue.pop(0)
        runs += 1
        assert runs < 50
        assert service.task_started(project, work.task_id).success
        result = await backend.run(work, CONTEXT, RecordingReporter())
        assert result.success, (work.phase, result.error)
        outcome = service.task_succeeded(
            project, work.task_id, result.output, result.test_results, result.metrics, result.proposed_stories
        )
        assert outcome.result.get("accepted") is True, (work.phase, outcome.result)
        queue += outcome.work

    assert project.state is WorkflowState.SPRINT_REVIEW
    assert [s.title for s in project.stories.values()] == [
        "Users can register with email",
        "Log in with a password",
    ]
    assert all(c.is_complete for c in project.tdd_cycles.values())
    assert runs == 1 + 2 * 5
