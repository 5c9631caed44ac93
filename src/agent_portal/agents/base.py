"""The one interface every agent backend implements: run one piece of agent work, reporting as it goes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent_portal.domain.models import AgentWork, CodeMetrics, TestResult


@dataclass(frozen=True)
class AgentResult:
    success: bool
    output: str = ""
    error: str | None = None
    test_results: Sequence[TestResult] = ()
    metrics: CodeMetrics | None = None
    # For an epic decomposition: [{title, description, priority?, acceptance_criteria?}]
    proposed_stories: Sequence[dict[str, Any]] = field(default_factory=tuple)


class AgentReporter(Protocol):
    """How a backend tells the orchestrator what is happening while it works."""

    async def progress(self, percent: int) -> None:
        """0-100, monotone; the orchestrator ignores values that go backwards."""
        ...

    async def output(self, stream: str, text: str) -> None:
        """A chunk of output; `stream` is "stdout", "stderr" or "test_result". Streamed live to /monitoring
        when the work belongs to a TDD cycle."""
        ...


@dataclass(frozen=True)
class AgentContext:
    """What a backend may use besides the work item itself."""

    project_path: Path | None
    timeout_seconds: float
    test_command: Sequence[str] | None = None


class AgentBackend(Protocol):
    #: Shown in the UI data: "demo" backends are labelled as such.
    name: str

    async def run(self, work: AgentWork, context: AgentContext, report: AgentReporter) -> AgentResult: ...
