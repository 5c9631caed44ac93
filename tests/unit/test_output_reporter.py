"""The embedded orchestrator's output batching (orchestrator/embedded.py `_Reporter`): what an
agent reports reaches the project, even when the agent finishes while a batch is being saved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_portal.domain.models import AgentType, AgentWork
from agent_portal.orchestrator.embedded import _Reporter


@dataclass
class SlowOrchestrator:
    """Records every chunk it is asked to save; each save waits until `release` is set."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    saving: asyncio.Event = field(default_factory=asyncio.Event)
    saved: list[str] = field(default_factory=list)

    @property
    def service(self) -> Any:
        return self

    def record_test_output(self, agg: Any, cycle_id: str, stream: str, text: str) -> Any:
        self.saved.append(text)
        return type("Step", (), {"events": [], "changed": True})()

    async def apply(self, project: str, change: Callable[[Any], Any]) -> None:
        self.saving.set()
        await self.release.wait()
        change(None)


def work() -> AgentWork:
    return AgentWork("demo", "t1", next(iter(AgentType)), "run", kind="run_tests", cycle_id="c1")


async def test_output_being_saved_when_the_agent_finishes_is_not_lost() -> None:
    orchestrator = SlowOrchestrator()
    reporter = _Reporter(orchestrator, work())  # type: ignore[arg-type]
    await reporter.output("stdout", "first\n")
    await asyncio.wait_for(orchestrator.saving.wait(), 5)  # the batch is taken and being saved
    await reporter.output("stdout", "second\n")
    closing = asyncio.create_task(reporter.close())
    await asyncio.sleep(0.01)
    orchestrator.release.set()
    await asyncio.wait_for(closing, 5)
    assert orchestrator.saved == ["first\n", "second\n"]


async def test_output_still_waiting_for_its_batch_is_saved_at_close_at_once() -> None:
    orchestrator = SlowOrchestrator()
    orchestrator.release.set()
    reporter = _Reporter(orchestrator, work())  # type: ignore[arg-type]
    await reporter.output("stdout", "a\n")
    await reporter.output("stdout", "b\n")
    await asyncio.wait_for(reporter.close(), 0.05)  # does not wait out the batching delay
    assert orchestrator.saved == ["a\nb\n"]
