"""A reporter that records what a backend reports, and work items for the agent backend tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_portal.domain.models import AgentType, AgentWork, TDDState


@dataclass
class RecordingReporter:
    progress_values: list[int] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)

    async def progress(self, percent: int) -> None:
        self.progress_values.append(percent)

    async def output(self, stream: str, text: str) -> None:
        self.outputs.append((stream, text))

    def lines(self, stream: str) -> list[str]:
        return [text for s, text in self.outputs if s == stream]


def phase_work(
    phase: TDDState | None,
    *,
    task_id: str = "task-00000001",
    story_id: str = "story-00000001",
    title: str = "User can log in with email",
    agent_type: AgentType = AgentType.QA,
    kind: str = "task",
    command: str | None = None,
    context: dict[str, Any] | None = None,
) -> AgentWork:
    return AgentWork(
        project_name="demo",
        task_id=task_id,
        agent_type=agent_type,
        command=command if command is not None else f"Work on story {story_id}: {title}",
        kind=kind,
        phase=phase,
        story_id=story_id,
        cycle_id="tdd-cycle-00000001",
        context={"story_title": title} if context is None else context,
    )
