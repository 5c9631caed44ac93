"""/portal: join and leave projects, narrow the stream, presence (spec §1, decisions §4)."""

from __future__ import annotations

from typing import Any

from agent_portal.auth.policy import Permission
from agent_portal.gateway.base import Gateway, Route
from agent_portal.gateway.context import SocketContext
from agent_portal.gateway.streams import Streams
from agent_portal.protocol.client_events import JoinProjectRequest, LeaveProjectRequest, SubscribeRequest
from agent_portal.protocol.registry import NamespaceKind


class PortalNamespace:
    kind = NamespaceKind.PORTAL
    connect_permission = Permission.PROJECTS_READ

    def __init__(self, gateway: Gateway) -> None:
        self.streams = Streams(gateway)

    def routes(self) -> dict[str, Route]:
        read = Permission.PROJECTS_READ
        return {
            "join_project": Route(self.join_project, read),
            "leave_project": Route(self.leave_project, read),
            "subscribe_to_events": Route(self.subscribe_to_events, read),
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
