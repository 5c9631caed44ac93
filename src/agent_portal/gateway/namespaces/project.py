"""/project/{name}: every event of one project, its snapshot, and approvals (decisions §4)."""

from __future__ import annotations

from typing import Any

from agent_portal.auth.policy import Permission
from agent_portal.gateway.base import Gateway, Route
from agent_portal.gateway.context import SocketContext
from agent_portal.gateway.streams import Streams
from agent_portal.protocol.client_events import (
    EmptyRequest,
    JoinProjectRequest,
    LeaveProjectRequest,
    ResolveApprovalRequest,
    SubscribeRequest,
)
from agent_portal.protocol.registry import NamespaceKind


class ProjectNamespace:
    kind = NamespaceKind.PROJECT
    connect_permission = Permission.PROJECTS_READ

    def __init__(self, gateway: Gateway) -> None:
        self.streams = Streams(gateway)
        self.s = gateway.services

    def routes(self) -> dict[str, Route]:
        read = Permission.PROJECTS_READ
        return {
            "join_project": Route(self.join_project, read),
            "leave_project": Route(self.leave_project, read),
            "subscribe_to_events": Route(self.subscribe_to_events, read),
            "get_snapshot": Route(self.get_snapshot, read),
            "resolve_approval": Route(self.resolve_approval, Permission.APPROVALS_RESOLVE),
        }

    async def on_connect(self, ctx: SocketContext) -> None:
        await self.streams.resume(ctx)

    async def on_disconnect(self, ctx: SocketContext) -> None:
        await self.streams.leave_all(ctx)

    async def join_project(self, ctx: SocketContext, request: JoinProjectRequest) -> Any:
        return await self.streams.join(ctx, request.project_name)

    async def leave_project(self, ctx: SocketContext, request: LeaveProjectRequest) -> Any:
        return await self.streams.leave(ctx, request.project_name)

    async def subscribe_to_events(self, ctx: SocketContext, request: SubscribeRequest) -> Any:
        return await self.streams.subscribe(ctx, request)

    async def get_snapshot(self, ctx: SocketContext, _request: EmptyRequest) -> Any:
        assert ctx.project is not None
        snapshot = await self.s.router.snapshot(ctx.project)
        return {
            "project_name": ctx.project,
            "active_users": await self.s.presence.users(ctx.project),
            **snapshot,
        }

    async def resolve_approval(self, ctx: SocketContext, request: ResolveApprovalRequest) -> Any:
        assert ctx.project is not None and ctx.principal is not None
        result = await self.s.router.resolve_approval(
            ctx.project, request.request_id, request.approved, ctx.principal, request.comment
        )
        await self.s.audit.record(
            ctx.principal.user_id,
            "approval",
            f"{ctx.project}:{request.request_id}",
            success=bool(result.get("success")),
            ip=ctx.ip,
            user_agent=ctx.user_agent,
            error=None if result.get("success") else str(result.get("error")),
        )
        return result
