"""/admin (admins only): live configuration and the audit trail (decisions §4)."""

from __future__ import annotations

from typing import Any

from agent_portal.auth.policy import Permission
from agent_portal.gateway.base import Gateway, Route
from agent_portal.gateway.context import SocketContext
from agent_portal.protocol.client_events import GetAuditLogRequest, GetConfigRequest, UpdateConfigRequest
from agent_portal.protocol.registry import NamespaceKind


class AdminNamespace:
    kind = NamespaceKind.ADMIN
    connect_permission = Permission.ADMIN

    def __init__(self, gateway: Gateway) -> None:
        self.s = gateway.services

    def routes(self) -> dict[str, Route]:
        admin = Permission.ADMIN
        return {
            "get_config": Route(self.get_config, admin),
            "update_config": Route(self.update_config, admin),
            "get_audit_log": Route(self.get_audit_log, admin),
        }

    async def on_connect(self, ctx: SocketContext) -> None:
        return None

    async def on_disconnect(self, ctx: SocketContext) -> None:
        return None

    async def get_config(self, ctx: SocketContext, request: GetConfigRequest) -> Any:
        return {
            "config_type": request.config_type,
            "config": self.s.config.get(request.config_type).model_dump(),
        }

    async def update_config(self, ctx: SocketContext, request: UpdateConfigRequest) -> Any:
        try:
            updated = await self.s.config.update(
                request.config_type, request.changes, ctx.user_id, request.reason
            )
        except Exception as exc:
            await self.s.audit.record(
                ctx.user_id,
                "config_change",
                request.config_type,
                success=False,
                ip=ctx.ip,
                user_agent=ctx.user_agent,
                error=getattr(exc, "message", "internal"),
            )
            raise
        await self.s.audit.record(
            ctx.user_id,
            "config_change",
            request.config_type,
            success=True,
            ip=ctx.ip,
            user_agent=ctx.user_agent,
        )
        return {"config_type": request.config_type, "config": updated.model_dump()}

    async def get_audit_log(self, ctx: SocketContext, request: GetAuditLogRequest) -> Any:
        events = await self.s.audit.page(request.limit, request.before)
        return {"entries": [e.wire() for e in events], "has_more": len(events) == request.limit}
