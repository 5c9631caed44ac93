"""A backend that plays every agent type without doing any real work, so a sprint can be watched end
to end with nothing installed. Every line, result and story it produces says it is a demo.

Choices that look random (how many tests, which failure message, metric values) come from a hash of
the story (or epic) text, so the same work always plays out the same way and a test failing in
test_red is the very test that passes in code_green.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_portal.agents.base import AgentContext, AgentReporter, AgentResult
from agent_portal.domain.models import AgentType, AgentWork, CodeMetrics, TDDState, TestResult, TestStatus

TAG = "[demo]"
Clock = Callable[[], datetime]

_ASPECTS = (
    "happy_path",
    "rejects_invalid_input",
    "handles_empty_input",
    "persists_result",
    "reports_errors",
    "respects_permissions",
)
_FAILURES = (
    "NotImplementedError: {subject} is not implemented yet",
    "AssertionError: assert None == {{'ok': True}}",
    "AttributeError: module '{module}' has no attribute '{subject}'",
    "AssertionError: expected status 200, got 501",
)
_STORY_ANGLES = (
    ("Core: {subject}", "the core of {subject} works end to end", 1),
    ("Validation and errors: {subject}", "clear errors for invalid input to {subject}", 2),
    ("Visibility: {subject}", "{subject} shows its status and history", 3),
)
_WORD = re.compile(r"[a-z0-9]+")
_SPLIT = re.compile(r"\s*(?:[,;.\n]|\band\b|\bthen\b)\s*", re.IGNORECASE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def _pick(seed: bytes, index: int, modulo: int) -> int:
    return seed[index % len(seed)] % modulo


def _slug(text: str, words: int = 4) -> str:
    return "_".join(_WORD.findall(text.lower())[:words]) or "feature"


def _ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _story_title(work: AgentWork) -> str:
    title = work.context.get("story_title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    # Phase commands end with ": <title>" (domain PHASE_COMMAND); fall back to the whole command.
    return work.command.rsplit(": ", 1)[-1].strip() or work.story_id or work.task_id


@dataclass(frozen=True)
class _DemoTest:
    file: str
    name: str
    failure: str
    millis: float


def demo_tests(story_key: str, title: str) -> list[_DemoTest]:
    """The tests the demo QA agent 'writes' for a story: 2–4 of them, the same every time."""
    seed = _digest("tests", story_key, title)
    slug = _slug(title)
    module = f"tests/tdd/{story_key}/test_{slug}.py"
    count = 2 + _pick(seed, 0, 3)
    start = _pick(seed, 1, len(_ASPECTS))
    tests = []
    for i in range(count):
        aspect = _ASPECTS[(start + i) % len(_ASPECTS)]
        failure = _FAILURES[_pick(seed, 2 + i, len(_FAILURES))].format(subject=slug, module=f"app.{slug}")
        millis = 1.0 + _pick(seed, 8 + i, 200) + _pick(seed, 16 + i, 100) / 100
        tests.append(_DemoTest(module, f"test_{slug}_{aspect}", failure, round(millis, 2)))
    return tests


def propose_stories(epic_text: str) -> list[dict[str, Any]]:
    """2–3 stories for an epic: its own clauses when it lists several, else angles on its subject."""
    seed = _digest("epic", epic_text)
    clauses = [c.strip() for c in _SPLIT.split(epic_text) if len(_WORD.findall(c.lower())) >= 2]
    clauses = list(dict.fromkeys(clauses))
    stories: list[dict[str, Any]] = []
    if len(clauses) >= 2:
        for priority, clause in enumerate(clauses[:3], start=1):
            title = clause[:1].upper() + clause[1:80]
            stories.append(
                {
                    "title": title,
                    "description": f"{TAG} Part of the epic: {clause}.",
                    "priority": priority,
                    "acceptance_criteria": [
                        f"{TAG} {title} works as described",
                        f"{TAG} tests cover {title}",
                    ],
                }
            )
        return stories
    subject = " ".join(_WORD.findall(epic_text.lower())[:6]) or "the feature"
    for title_form, want, priority in _STORY_ANGLES[: 2 + _pick(seed, 0, 2)]:
        title = title_form.format(subject=subject)
        stories.append(
            {
                "title": title[:1].upper() + title[1:],
                "description": f"{TAG} Deliver {want.format(subject=subject)}.",
                "priority": priority,
                "acceptance_criteria": [
                    f"{TAG} {want.format(subject=subject)}",
                    f"{TAG} covered by automated tests",
                ],
            }
        )
    return stories


class DemoBackend:
    """``step_delay`` seconds pass between the progress steps 0, 25, 50, 75, 100."""

    name = "demo"

    def __init__(self, step_delay: float = 0.4, *, clock: Clock = _utc_now) -> None:
        self._step_delay = step_delay
        self._clock = clock

    async def run(self, work: AgentWork, context: AgentContext, report: AgentReporter) -> AgentResult:
        lines, result = self._play(work)
        # Spread the lines over the four steps so the output visibly arrives while progress moves.
        per_step = max(1, -(-len(lines) // 4))
        await report.progress(0)
        for step in range(4):
            await asyncio.sleep(self._step_delay)
            for line in lines[step * per_step : (step + 1) * per_step]:
                stream, text = line
                await report.output(stream, f"{TAG} {text}\n")
            await report.progress(25 * (step + 1))
        return result

    # ------------------------------------------------------------------ what each agent does

    def _play(self, work: AgentWork) -> tuple[list[tuple[str, str]], AgentResult]:
        if work.kind == "run_tests":
            return self._test_run(work, work.phase)
        if work.phase is TDDState.DESIGN:
            return self._design(work)
        if work.phase is TDDState.TEST_RED:
            return self._test_run(work, TDDState.TEST_RED, wrote_tests=True)
        if work.phase in (TDDState.CODE_GREEN, TDDState.REFACTOR):
            return self._test_run(work, work.phase)
        if work.phase is TDDState.COMMIT:
            return self._commit(work)
        if work.agent_type is AgentType.DESIGN and "epic_id" in work.context:
            return self._decompose(work)
        return self._generic(work)

    def _dry(self, work: AgentWork) -> str:
        return " (dry run)" if work.dry_run else ""

    def _design(self, work: AgentWork) -> tuple[list[tuple[str, str]], AgentResult]:
        title = _story_title(work)
        criteria = [str(c) for c in work.context.get("acceptance_criteria", []) if str(c).strip()]
        tests = demo_tests(self._story_key(work), title)
        notes = [
            f"Design notes for '{title}'{self._dry(work)}",
            f"Module: app/{_slug(title)}.py",
            *(f"Acceptance: {c}" for c in criteria or [f"{title} works as described"]),
            *(f"Planned test: {t.name}" for t in tests),
        ]
        lines = [("stdout", n) for n in notes]
        output = "\n".join(f"{TAG} {n}" for n in notes)
        return lines, AgentResult(success=True, output=f"Demo DesignAgent: design notes\n{output}")

    def _test_run(
        self, work: AgentWork, phase: TDDState | None, *, wrote_tests: bool = False
    ) -> tuple[list[tuple[str, str]], AgentResult]:
        title = _story_title(work)
        tests = [] if phase in (None, TDDState.DESIGN) else demo_tests(self._story_key(work), title)
        failing = phase is TDDState.TEST_RED
        now = _ms(self._clock())
        lines: list[tuple[str, str]] = []
        if wrote_tests and tests:
            lines.append(
                ("stdout", f"wrote {tests[0].file} with {len(tests)} failing tests{self._dry(work)}")
            )
        lines.append(
            ("stdout", "============================= test session starts ==============================")
        )
        lines.append(("stdout", f"collected {len(tests)} items"))
        results: list[TestResult] = []
        for test in tests:
            verdict = "FAILED" if failing else "PASSED"
            lines.append(("stdout", f"{test.file}::{test.name} {verdict}"))
            results.append(
                TestResult(
                    id=f"test-{_digest('result', work.task_id, test.name).hex()[:8]}",
                    test_file=test.file,
                    test_name=test.name,
                    status=TestStatus.RED if failing else TestStatus.GREEN,
                    timestamp=now,
                    output=f"{TAG} {test.file}::{test.name} {verdict}",
                    error_message=f"{TAG} {test.failure}" if failing else None,
                    execution_time=test.millis,
                )
            )
        if failing:
            for test in tests:
                lines.append(("stdout", f"_____ {test.name} _____"))
                lines.append(("stdout", f"E   {test.failure}"))
        seconds = sum(t.millis for t in tests) / 1000
        if not tests:
            summary = "no tests ran"
        else:
            summary = f"{len(tests)} failed" if failing else f"{len(tests)} passed"
        lines.append(
            (
                "stdout",
                f"============================= {summary} in {seconds:.2f}s =============================",
            )
        )
        lines.extend(("test_result", f"{r.status.value} {r.test_file}::{r.test_name}") for r in results)
        metrics = self._metrics(work, phase)
        header = {
            None: "Demo QAAgent: test run",
            TDDState.DESIGN: "Demo QAAgent: test run",
            TDDState.TEST_RED: "Demo QAAgent: failing tests written",
            TDDState.CODE_GREEN: "Demo CodeAgent: implementation makes the tests pass",
            TDDState.REFACTOR: "Demo CodeAgent: refactored, tests still green",
            TDDState.COMMIT: "Demo QAAgent: test run",
        }[phase]
        if work.kind == "run_tests":
            header = "Demo test run"
        output = header + f" ({summary})\n" + "\n".join(f"{TAG} {text}" for _, text in lines)
        # Failing tests are the goal of test_red, so that phase succeeds with red results (the domain
        # needs them to leave test_red); a test run succeeds only when everything is green.
        success = bool(tests) and (not failing or work.kind == "task")
        error = None if success else f"{TAG} {summary}"
        return lines, AgentResult(
            success=success, output=output, error=error, test_results=results, metrics=metrics
        )

    def _metrics(self, work: AgentWork, phase: TDDState | None) -> CodeMetrics | None:
        if phase not in (TDDState.CODE_GREEN, TDDState.REFACTOR):
            return None
        seed = _digest("metrics", self._story_key(work))
        coverage = 72.0 + _pick(seed, 0, 15)
        complexity = 8.0 + _pick(seed, 1, 8)
        duplication = 6.0 + _pick(seed, 2, 6)
        maintainability = 58.0 + _pick(seed, 3, 12)
        if phase is TDDState.REFACTOR:
            # Refactoring is the demo's visible payoff: more covered, simpler, less duplicated.
            coverage, complexity = coverage + 8.0, complexity - 4.0
            duplication, maintainability = duplication / 2, maintainability + 18.0
        return CodeMetrics(
            coverage=min(100.0, coverage),
            complexity=complexity,
            duplication=duplication,
            maintainability=min(100.0, maintainability),
        )

    def _commit(self, work: AgentWork) -> tuple[list[tuple[str, str]], AgentResult]:
        title = _story_title(work)
        sha = _digest("commit", self._story_key(work), title).hex()[:7]
        message = f"feat({work.story_id or 'story'}): {title}"
        lines = [
            ("stdout", f"commit {sha}: {message}{self._dry(work)}"),
            ("stdout", "nothing was written to disk"),
        ]
        return lines, AgentResult(success=True, output=f"Demo commit {sha}: {message}")

    def _decompose(self, work: AgentWork) -> tuple[list[tuple[str, str]], AgentResult]:
        epic = work.context.get("epic_description")
        text = epic if isinstance(epic, str) and epic.strip() else work.command.split(": ", 1)[-1]
        stories = propose_stories(text)
        lines = [("stdout", f"proposed story P{s['priority']}: {s['title']}") for s in stories]
        output = f"Demo DesignAgent proposed {len(stories)} stories\n" + "\n".join(
            f"{TAG} {text}" for _, text in lines
        )
        return lines, AgentResult(success=True, output=output, proposed_stories=tuple(stories))

    def _generic(self, work: AgentWork) -> tuple[list[tuple[str, str]], AgentResult]:
        line = f"{work.agent_type.value} handled: {work.command}{self._dry(work)}"
        return [("stdout", line)], AgentResult(success=True, output=f"Demo {work.agent_type.value}: {line}")

    @staticmethod
    def _story_key(work: AgentWork) -> str:
        # Test names must match across the cycle's phases (the domain compares results by file and
        # name), so they hang on the story, never on the task.
        return work.story_id or work.cycle_id or work.task_id
