"""Sends each project's work to whoever runs it: the embedded orchestrator, or an external one."""

from __future__ import annotations

from typing import Any

from agent_portal.auth.policy import Principal
from agent_portal.errors import ProjectNotFoundError, UnavailableError
from agent_portal.orchestrator.port import ProjectOrchestrator
from agent_portal.storage.store import Store


class OrchestratorRouter:
    def __init__(
        self, store: Store, external: ProjectOrchestrator, embedded: ProjectOrchestrator | None
    ) -> None:
        self._store = store
        self.external = external
        self.embedded = embedded

    async def for_project(self, project: str) -> ProjectOrchestrator:
        record = await self._store.get_project(project)
        if record is None:
            raise ProjectNotFoundError(project)
        if record.external:
            return self.external
        if self.embedded is None:
            raise UnavailableError("No orchestrator runs this project", code="orchestrator_unavailable")
        return self.embedded

    async def run_command(
        self, project: str, command: str, args: dict[str, Any], user: Principal
    ) -> dict[str, Any]:
        return await (await self.for_project(project)).run_command(project, command, args, user)

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]:
        target = await self.for_project(project)
        return await target.resolve_approval(project, request_id, approved, user, comment)

    async def snapshot(self, project: str) -> dict[str, Any]:
        return await (await self.for_project(project)).snapshot(project)

    async def current_state(self, project: str) -> str:
        try:
            return await (await self.for_project(project)).current_state(project)
        except UnavailableError:
            return "IDLE"
