"""What the gateway needs from whatever runs a project: the embedded orchestrator or an external one."""

from __future__ import annotations

from typing import Any, Protocol

from agent_portal.auth.policy import Principal


class ProjectOrchestrator(Protocol):
    async def run_command(
        self, project: str, command: str, args: dict[str, Any], user: Principal
    ) -> dict[str, Any]:
        """Runs one chat command; returns the reference orchestrator's result dict (always has `success`)."""
        ...

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]: ...

    async def snapshot(self, project: str) -> dict[str, Any]: ...

    async def current_state(self, project: str) -> str: ...
