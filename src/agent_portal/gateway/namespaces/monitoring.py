"""/monitoring: agent activity, TDD cycles and test output of the projects the user may see, and
`system_metrics` for everyone there (decisions §4)."""

from __future__ import annotations

from typing import Any

from agent_portal.auth.policy import Permission, can_see
from agent_portal.errors import ForbiddenError
from agent_portal.gateway.base import Gateway, Route
from agent_portal.gateway.context import SocketContext
from agent_portal.gateway.streams import Streams
from agent_portal.protocol.client_events import GetTestOutputRequest, SubscribeRequest
from agent_portal.protocol.registry import NamespaceKind
from agent_portal.protocol.server_events import TestOutputEvent


class MonitoringNamespace:
    kind = NamespaceKind.MONITORING
    connect_permission = Permission.MONITORING_READ

    def __init__(self, gateway: Gateway) -> None:
        self.streams = Streams(gateway)
        self.s = gateway.services

    def routes(self) -> dict[str, Route]:
        read = Permission.MONITORING_READ
        return {
            "subscribe_to_events": Route(self.subscribe_to_events, read),
            "get_test_output": Route(self.get_test_output, read),
        }

    async def on_connect(self, ctx: SocketContext) -> None:
        await self.streams.apply(ctx)

    async def on_disconnect(self, ctx: SocketContext) -> None:
        return None

    async def subscribe_to_events(self, ctx: SocketContext, request: SubscribeRequest) -> Any:
        return await self.streams.subscribe(ctx, request)

    async def get_test_output(self, ctx: SocketContext, request: GetTestOutputRequest) -> Any:
        assert ctx.principal is not None
        records = await self.s.store.list_test_output(
            request.cycle_id, request.after_sequence, request.limit + 1
        )
        if records and not can_see(ctx.principal, records[0].project):
            raise ForbiddenError("Not allowed on this cycle's project")
        has_more = len(records) > request.limit
        return {
            "cycle_id": request.cycle_id,
            "lines": [
                TestOutputEvent(
                    project_name=r.project,
                    cycle_id=r.cycle_id,
                    output_type=r.output_type,
                    content=r.content,
                    timestamp=r.created_at,
                    sequence_number=r.sequence_number,
                ).wire()
                for r in records[: request.limit]
            ],
            "has_more": has_more,
        }
