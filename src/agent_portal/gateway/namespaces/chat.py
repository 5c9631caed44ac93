"""/chat/{name}: messages and commands, history, threads, reactions, typing (decisions §4)."""

from __future__ import annotations

from typing import Any

from agent_portal.auth.policy import Permission
from agent_portal.gateway.base import Gateway, Route
from agent_portal.gateway.context import SocketContext
from agent_portal.protocol.client_events import (
    EmptyRequest,
    GetHistoryRequest,
    ReactionRequest,
    SendMessageRequest,
)
from agent_portal.protocol.registry import NamespaceKind


class ChatNamespace:
    kind = NamespaceKind.CHAT
    connect_permission = Permission.PROJECTS_READ

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.s = gateway.services

    def routes(self) -> dict[str, Route]:
        write = Permission.CHAT_WRITE
        return {
            # Who may send depends on the content (viewers may run read-only commands): ChatService decides.
            "send_message": Route(self.send_message, Permission.PROJECTS_READ),
            "typing_start": Route(self.typing_start, write),
            "typing_stop": Route(self.typing_stop, write),
            "get_history": Route(self.get_history, Permission.PROJECTS_READ),
            "add_reaction": Route(self.add_reaction, write),
            "remove_reaction": Route(self.remove_reaction, write),
        }

    async def on_connect(self, ctx: SocketContext) -> None:
        return None

    async def on_disconnect(self, ctx: SocketContext) -> None:
        assert ctx.project is not None
        if not self.gateway.sockets_of(ctx.namespace, ctx.user_id):
            await self.s.chat.stop_typing(ctx.project, ctx.user_id)

    async def send_message(self, ctx: SocketContext, request: SendMessageRequest) -> Any:
        assert ctx.project is not None and ctx.principal is not None
        return await self.s.chat.send(
            ctx.project, ctx.principal, request, ip=ctx.ip, user_agent=ctx.user_agent
        )

    async def typing_start(self, ctx: SocketContext, _request: EmptyRequest) -> Any:
        assert ctx.project is not None
        await self.s.chat.start_typing(
            ctx.project, ctx.user_id, self.gateway.sockets_of(ctx.namespace, ctx.user_id)
        )
        return None

    async def typing_stop(self, ctx: SocketContext, _request: EmptyRequest) -> Any:
        assert ctx.project is not None
        await self.s.chat.stop_typing(
            ctx.project, ctx.user_id, self.gateway.sockets_of(ctx.namespace, ctx.user_id)
        )
        return None

    async def get_history(self, ctx: SocketContext, request: GetHistoryRequest) -> Any:
        assert ctx.project is not None
        return await self.s.chat.history(
            ctx.project, request.before, request.thread_id, request.limit, request.before_message_id
        )

    async def add_reaction(self, ctx: SocketContext, request: ReactionRequest) -> Any:
        assert ctx.project is not None and ctx.principal is not None
        return await self.s.chat.react(ctx.project, ctx.principal, request.message_id, request.emoji, True)

    async def remove_reaction(self, ctx: SocketContext, request: ReactionRequest) -> Any:
        assert ctx.project is not None and ctx.principal is not None
        return await self.s.chat.react(ctx.project, ctx.principal, request.message_id, request.emoji, False)
