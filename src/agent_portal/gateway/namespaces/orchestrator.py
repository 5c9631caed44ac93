"""/orchestrator: external orchestrators publish events and answer commands (decisions §6)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from agent_portal.auth.policy import Permission, can_see
from agent_portal.errors import ForbiddenError, ProjectNotFoundError, ValidationFailed
from agent_portal.gateway.base import Gateway, Route, _validation_details, strict_parse
from agent_portal.gateway.context import SocketContext
from agent_portal.protocol.client_events import PublishRequest
from agent_portal.protocol.common import ErrorDetail
from agent_portal.protocol.registry import PUBLISHABLE_EVENTS, NamespaceKind
from agent_portal.storage.store import ProjectRecord

# A project's last activity is kept to this resolution: one write (a commit) per publication was
# most of an orchestrator's per-event cost on the product-path bench (docs/performance.md).
ACTIVITY_RESOLUTION = timedelta(seconds=1)
# A project's record (does it exist, is it external) is read at most this often per project while an
# orchestrator publishes: the read was the next largest per-publication cost (docs/performance.md).
RECORD_TTL = 1.0


class OrchestratorNamespace:
    kind = NamespaceKind.ORCHESTRATOR
    connect_permission = Permission.ORCHESTRATOR

    def __init__(self, gateway: Gateway) -> None:
        self.s = gateway.services
        self._records: dict[str, tuple[ProjectRecord, float]] = {}

    def routes(self) -> dict[str, Route]:
        return {"publish": Route(self.publish, Permission.ORCHESTRATOR)}

    async def on_connect(self, ctx: SocketContext) -> None:
        assert ctx.principal is not None
        served = ["*"] if ctx.principal.sees_all_projects else sorted(ctx.principal.projects)
        self.s.external.register(ctx.sid, served)

    async def on_disconnect(self, ctx: SocketContext) -> None:
        self.s.external.unregister(ctx.sid)

    async def publish(self, ctx: SocketContext, request: PublishRequest) -> Any:
        assert ctx.principal is not None
        model = PUBLISHABLE_EVENTS.get(request.event)
        if model is None:
            raise ValidationFailed(
                f"Unknown event: {request.event}",
                details=[
                    ErrorDetail(path="event", message=f"one of {', '.join(sorted(PUBLISHABLE_EVENTS))}")
                ],
            )
        try:
            event = strict_parse(model, request.data)
        except ValidationError as exc:
            raise ValidationFailed(
                f"Invalid data for {request.event}",
                details=[
                    ErrorDetail(path=f"data.{d.path}", message=d.message) for d in _validation_details(exc)
                ],
            ) from None
        project = getattr(event, "project_name", None)
        if project is not None:
            if not can_see(ctx.principal, project):
                raise ForbiddenError(f"Not allowed to publish for project {project}")
            record = await self._record(project)
            if not record.external:
                raise ForbiddenError(f"Project {project} is run by the embedded orchestrator")
            now = self.s.clock.now()
            if now - record.last_activity >= ACTIVITY_RESOLUTION:
                await self.s.store.touch_project(project, now)
                self._records[project] = (replace(record, last_activity=now), self._records[project][1])
        await self.s.publisher.publish(request.event, event)
        return {"event": request.event}

    async def _record(self, project: str) -> ProjectRecord:
        now = time.monotonic()
        cached = self._records.get(project)
        if cached is not None and now - cached[1] < RECORD_TTL:
            return cached[0]
        record = await self.s.store.get_project(project)
        if record is None:
            self._records.pop(project, None)
            raise ProjectNotFoundError(project)
        self._records[project] = (record, now)
        return record
