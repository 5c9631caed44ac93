"""/orchestrator: external orchestrators publish events and answer commands (decisions §6)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from agent_portal.auth.policy import Permission, can_see
from agent_portal.errors import ForbiddenError, ProjectNotFoundError, ValidationFailed
from agent_portal.gateway.base import Gateway, Route, _validation_details, strict_parse, strict_parse_as
from agent_portal.gateway.context import SocketContext
from agent_portal.protocol.client_events import PublishRequest
from agent_portal.protocol.common import ErrorDetail, WireModel
from agent_portal.protocol.registry import PUBLISHABLE_EVENTS, NamespaceKind
from agent_portal.storage.store import ProjectRecord

# A project's last activity is kept to the minute. One write (a commit) per publication was most of
# an orchestrator's per-event cost on the product-path bench; one a second still held a broadcast
# back every second: on SQLite the write holds the database's one write lock while it waits for
# the disk, and the recovery log's append waited for it, ~4 ms, the p99 at a sustained rate
# (docs/performance.md, session 11).
ACTIVITY_RESOLUTION = timedelta(seconds=60)
# A project's record (does it exist, is it external) is read at most this often per project while an
# orchestrator publishes: the read was the next largest per-publication cost (docs/performance.md).
RECORD_TTL = 1.0

log = logging.getLogger(__name__)


class Publication(WireModel):
    """A publish request with its data validated as its event's model, in one pass: the route's
    parser for valid requests. Validating the request, then writing its data as JSON again and
    validating that, took ~5 us of a publication's ~50; this takes ~3 (docs/performance.md,
    session 16). Bad requests are still told what is wrong by `PublishRequest` and `publish`."""

    event: str
    data: BaseModel


def _publication_of(event: str, model: type[BaseModel]) -> type[Publication]:
    fields: dict[str, Any] = {"event": (Literal[event], ...), "data": (model, ...)}
    return create_model(f"Publication_{event}", __base__=Publication, **fields)


# Tagged by `event`: pydantic picks the one member to validate from it.
_ANY_PUBLICATION: Any = Annotated[
    Union[tuple(_publication_of(event, model) for event, model in PUBLISHABLE_EVENTS.items())],  # noqa: UP007
    Field(discriminator="event"),
]
_PUBLICATIONS: TypeAdapter[Publication] = TypeAdapter(_ANY_PUBLICATION)


def parse_publication(payload: Any) -> Publication:
    return strict_parse_as(_PUBLICATIONS, payload)


class OrchestratorNamespace:
    kind = NamespaceKind.ORCHESTRATOR
    connect_permission = Permission.ORCHESTRATOR

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.s = gateway.services
        self._records: dict[str, tuple[ProjectRecord, float]] = {}
        # Projects whose record is being read again, or whose last activity is being written.
        self._refreshing: set[str] = set()
        self._touching: set[str] = set()

    def routes(self) -> dict[str, Route]:
        return {"publish": Route(self.publish, Permission.ORCHESTRATOR, parse=parse_publication)}

    async def on_connect(self, ctx: SocketContext) -> None:
        assert ctx.principal is not None
        served = ["*"] if ctx.principal.sees_all_projects else sorted(ctx.principal.projects)
        self.s.external.register(ctx.sid, served)

    async def on_disconnect(self, ctx: SocketContext) -> None:
        self.s.external.unregister(ctx.sid)

    async def publish(self, ctx: SocketContext, request: Publication | PublishRequest) -> Any:
        assert ctx.principal is not None
        event = request.data if isinstance(request, Publication) else self._event_of(request)
        project = getattr(event, "project_name", None)
        if project is not None:
            if not can_see(ctx.principal, project):
                raise ForbiddenError(f"Not allowed to publish for project {project}")
            record = await self._record(project)
            if not record.external:
                raise ForbiddenError(f"Project {project} is run by the embedded orchestrator")
            now = self.s.clock.now()
            if now - record.last_activity >= ACTIVITY_RESOLUTION and project not in self._touching:
                # One publication has it written; the others in flight meanwhile do not write it too.
                self._touching.add(project)
                self.gateway.soon(self._touch(project, now))
        await self.s.publisher.publish(request.event, event)
        return {"event": request.event}

    @staticmethod
    def _event_of(request: PublishRequest) -> BaseModel:
        """The request's data as its event's model, or what is wrong with it."""
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
        return event

    async def _touch(self, project: str, now: datetime) -> None:
        # Not awaited by the publication: on SQLite the write is a commit that waits for the disk.
        try:
            await self.s.store.touch_project(project, now)
        except Exception:
            log.exception("writing the last activity of project %s failed", project)
            return
        finally:
            self._touching.discard(project)
        cached = self._records.get(project)
        if cached is not None:
            self._records[project] = (replace(cached[0], last_activity=now), cached[1])

    async def _record(self, project: str) -> ProjectRecord:
        cached = self._records.get(project)
        if cached is None:
            return await self._load(project)
        if time.monotonic() - cached[1] >= RECORD_TTL and project not in self._refreshing:
            # Read again once, after this publication, which goes on with the record it has, as do
            # the others meanwhile. When every publication in flight read it once expired, as they
            # did, a bench run read it ~80 times a second and wrote the activity ~35 times, where
            # once each was meant (docs/performance.md).
            self._refreshing.add(project)
            self.gateway.soon(self._refresh(project))
        return cached[0]

    async def _load(self, project: str) -> ProjectRecord:
        record = await self.s.store.get_project(project)
        if record is None:
            self._records.pop(project, None)
            raise ProjectNotFoundError(project)
        self._records[project] = (record, time.monotonic())
        return record

    async def _refresh(self, project: str) -> None:
        try:
            await self._load(project)
        except ProjectNotFoundError:
            pass  # forgotten: the next publication for it reads it, and is refused
        except Exception:
            log.exception("reading project %s failed", project)
        finally:
            self._refreshing.discard(project)
