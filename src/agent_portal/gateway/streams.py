"""What a socket receives and who counts as present: shared by /portal, /project/{name}, /monitoring."""

from __future__ import annotations

from agent_portal.auth.policy import can_see
from agent_portal.errors import ForbiddenError, ProjectNotFoundError, ValidationFailed
from agent_portal.gateway.base import Gateway
from agent_portal.gateway.context import SocketContext, event_set
from agent_portal.gateway.publisher import PORTAL, project_namespace
from agent_portal.gateway.rooms import ALL_PROJECTS_SCOPE, SYSTEM_SCOPE, members_room, subscription_rooms
from agent_portal.protocol.client_events import SubscribeRequest
from agent_portal.protocol.common import ErrorDetail
from agent_portal.protocol.registry import SUBSCRIBABLE, NamespaceKind
from agent_portal.protocol.server_events import JoinedProjectEvent, UserJoinedEvent, UserLeftEvent


class Streams:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.s = gateway.services

    async def scopes(self, ctx: SocketContext) -> set[str]:
        if ctx.kind is NamespaceKind.PORTAL:
            return set(ctx.joined)
        if ctx.kind is NamespaceKind.PROJECT:
            assert ctx.project is not None
            return {ctx.project}
        assert ctx.principal is not None
        if not ctx.principal.sees_all_projects:
            projects = set(ctx.principal.projects)
        elif any(project is not None for project in ctx.subscriptions):
            # One project narrowed: the "every project" room cannot leave it out, so follow each
            # project by name (projects added later are followed after the next subscribe).
            projects = {record.name for record in await self.s.store.list_projects()}
        else:
            projects = {ALL_PROJECTS_SCOPE}
        return projects | {SYSTEM_SCOPE}

    async def apply(self, ctx: SocketContext) -> None:
        """Moves the socket into exactly the rooms its scopes and subscriptions call for."""
        desired = subscription_rooms(await self.scopes(ctx), ctx.subscriptions)
        for room in ctx.rooms:
            if room not in desired:
                await self.gateway.leave(ctx, room)
        for room in sorted(desired.difference(ctx.rooms)):
            await self.gateway.join(ctx, room)
        ctx.rooms = tuple(sorted(desired))

    async def subscribe(self, ctx: SocketContext, request: SubscribeRequest) -> dict[str, object]:
        allowed = SUBSCRIBABLE[ctx.kind]
        unknown = sorted(set(request.events) - allowed)
        if unknown:
            raise ValidationFailed(
                f"Unknown event names: {', '.join(unknown)}",
                details=[ErrorDetail(path="events", message=f"allowed: {', '.join(sorted(allowed))}")],
            )
        project = request.project_name
        if project is not None:
            await self._visible_project(ctx, project)
            if ctx.kind is NamespaceKind.PROJECT and project != ctx.project:
                raise ValidationFailed(
                    "project_name must name this namespace's project",
                    details=[ErrorDetail(path="project_name", message=f"expected {ctx.project}")],
                )
        ctx.subscriptions[project] = event_set(request.events)
        await self.apply(ctx)
        await self.s.recovery.save(ctx)
        return {"events": sorted(request.events), "project_name": project}

    async def _visible_project(self, ctx: SocketContext, project: str) -> None:
        assert ctx.principal is not None
        if not can_see(ctx.principal, project):
            raise ForbiddenError(f"Not allowed on project {project}")
        if not await self.s.project_exists(project):
            raise ProjectNotFoundError(project)

    # --- presence ------------------------------------------------------------------------------

    async def join(self, ctx: SocketContext, project: str) -> dict[str, object]:
        assert ctx.principal is not None
        if ctx.kind is NamespaceKind.PROJECT and project != ctx.project:
            raise ValidationFailed(
                "project_name must name this namespace's project",
                details=[ErrorDetail(path="project_name", message=f"expected {ctx.project}")],
            )
        await self._visible_project(ctx, project)
        user = ctx.principal.user_id
        if project not in ctx.joined:
            ctx.joined |= {project}
            await self.gateway.join(ctx, members_room(project))
            await self.apply(ctx)
            if await self.s.presence.join(project, user, f"{ctx.namespace}#{ctx.sid}"):
                await self.s.publisher.to_members(
                    project,
                    "user_joined",
                    UserJoinedEvent(user_id=user, project_name=project, timestamp=self.s.clock.now()),
                    skip_sids=self._user_sids(project, user),
                )
            await self.s.audit.record(
                user, "join", project, success=True, ip=ctx.ip, user_agent=ctx.user_agent
            )
            await self.s.recovery.save(ctx)
        record = await self.s.store.get_project(project)
        assert record is not None
        joined = JoinedProjectEvent(
            project_name=project,
            current_state=await self.s.router.current_state(project),
            active_users=await self.s.presence.count(project),
            last_activity=record.last_activity,
        )
        await self.s.publisher.to_socket(ctx.namespace, ctx.sid, "joined_project", joined)
        return joined.wire()

    async def leave(self, ctx: SocketContext, project: str) -> dict[str, object]:
        assert ctx.principal is not None
        if project not in ctx.joined:
            return {"project_name": project, "left": False}
        ctx.joined -= {project}
        if ctx.kind is NamespaceKind.PORTAL:
            ctx.subscriptions.pop(project, None)
        await self.gateway.leave(ctx, members_room(project))
        await self.apply(ctx)
        await self._left(ctx, project)
        await self.s.recovery.save(ctx)
        return {"project_name": project, "left": True}

    async def resume(self, ctx: SocketContext) -> None:
        """A recovered socket is back in the projects it had joined (and counted in their presence)."""
        assert ctx.principal is not None
        for project in sorted(ctx.joined):
            if not can_see(ctx.principal, project) or not await self.s.project_exists(project):
                ctx.joined -= {project}
                continue
            await self.gateway.join(ctx, members_room(project))
            if await self.s.presence.join(project, ctx.principal.user_id, f"{ctx.namespace}#{ctx.sid}"):
                await self.s.publisher.to_members(
                    project,
                    "user_joined",
                    UserJoinedEvent(
                        user_id=ctx.principal.user_id, project_name=project, timestamp=self.s.clock.now()
                    ),
                    skip_sids=self._user_sids(project, ctx.principal.user_id),
                )
        await self.apply(ctx)

    async def leave_all(self, ctx: SocketContext) -> None:
        for project in sorted(ctx.joined):
            ctx.joined -= {project}
            await self._left(ctx, project)

    async def _left(self, ctx: SocketContext, project: str) -> None:
        assert ctx.principal is not None
        user = ctx.principal.user_id
        if await self.s.presence.leave(project, user, f"{ctx.namespace}#{ctx.sid}"):
            await self.s.publisher.to_members(
                project,
                "user_left",
                UserLeftEvent(user_id=user, project_name=project, timestamp=self.s.clock.now()),
                skip_sids=self._user_sids(project, user, also=ctx),
            )

    def _user_sids(self, project: str, user: str, also: SocketContext | None = None) -> dict[str, list[str]]:
        """The user's own sockets, which are not told about the user; `also` is a socket that is
        leaving (already gone from the gateway's list, but it may be recovered and replayed to)."""
        sids = {ns: self.gateway.sockets_of(ns, user) for ns in (PORTAL, project_namespace(project))}
        if also is not None:
            sids.setdefault(also.namespace, []).append(also.sid)
        return sids
