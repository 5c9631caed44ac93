"""Chat per project: messages, commands, threads, reactions, typing (decisions §4, §5)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

from agent_portal.auth.policy import Permission, Principal, can
from agent_portal.clock import SystemClock
from agent_portal.domain.commands import ParseError, is_read_only, parse
from agent_portal.errors import ForbiddenError, NotFoundError, PortalError, ValidationFailed
from agent_portal.gateway.publisher import Publisher
from agent_portal.orchestrator.router import OrchestratorRouter
from agent_portal.protocol.client_events import AttachmentRef, SendMessageRequest
from agent_portal.protocol.common import ErrorDetail, FileAttachment, Reaction, format_timestamp
from agent_portal.protocol.server_events import (
    CommandResultEvent,
    MessageReceivedEvent,
    ReactionUpdatedEvent,
    ThreadCreatedEvent,
    ThreadUpdatedEvent,
    TypingEvent,
)
from agent_portal.services import embeds
from agent_portal.services.audit import AuditService
from agent_portal.services.metrics import Metrics
from agent_portal.storage.store import MessageRecord, Store, ThreadRecord

ORCHESTRATOR_USER = "orchestrator"


def to_event(record: MessageRecord, reactions: dict[str, list[str]] | None = None) -> MessageReceivedEvent:
    return MessageReceivedEvent(
        message_id=record.id,
        project_name=record.project,
        user_id=record.user_id,
        content=record.content,
        type=record.type,
        timestamp=record.created_at,
        thread_id=record.thread_id,
        attachments=[FileAttachment.model_validate(a) for a in record.attachments]
        if record.attachments
        else None,
        reactions=[Reaction(emoji=e, count=len(u), user_ids=u) for e, u in reactions.items()]
        if reactions
        else None,
        embed_data=record.embed_data,
    )


class ChatService:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        router: OrchestratorRouter,
        audit: AuditService,
        metrics: Metrics,
        clock: SystemClock,
        typing_lapse: float,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._router = router
        self._audit = audit
        self._metrics = metrics
        self._clock = clock
        self._typing_lapse = typing_lapse
        self._typing: dict[tuple[str, str], asyncio.TimerHandle] = {}

    # --- messages ------------------------------------------------------------------------------

    async def send(
        self,
        project: str,
        user: Principal,
        request: SendMessageRequest,
        *,
        ip: str = "",
        user_agent: str = "",
    ) -> dict[str, Any]:
        is_command = request.type == "command" or request.content.lstrip().startswith("/")
        if is_command:
            try:
                parsed = parse(request.content)
            except ParseError as exc:
                parsed = None
                parse_error: ParseError | None = exc
            else:
                parse_error = None
            needed = (
                Permission.PROJECTS_READ
                if parsed is not None and is_read_only(parsed.key)
                else Permission.COMMANDS_RUN
            )
            if not can(user, needed, project):
                raise ForbiddenError(
                    "Viewers may only run read-only commands"
                    if needed is Permission.COMMANDS_RUN
                    else "Not allowed to run commands"
                )
        elif not can(user, Permission.CHAT_WRITE, project):
            raise ForbiddenError(f"Permission {Permission.CHAT_WRITE.value} required to send messages")
        if request.type == "thread_reply" and request.thread_id is None:
            raise ValidationFailed(
                "Invalid message format",
                details=[ErrorDetail(path="thread_id", message="thread_reply needs a thread_id")],
            )
        attachments = await self._attachments(project, request.attachments or [])
        thread, created = await self._thread_for(project, user, request.thread_id)
        message_type = "thread" if thread else ("command" if is_command else "message")
        record = await self._store.add_message(
            MessageRecord(
                id=str(uuid.uuid4()),
                project=project,
                user_id=user.user_id,
                content=request.content,
                type=message_type,
                created_at=self._clock.now(),
                thread_id=thread.id if thread else None,
                attachments=[a.model_dump(mode="json") for a in attachments] or None,
            )
        )
        await self._store.touch_project(project, record.created_at)
        if created and thread:
            await self._publisher.to_chat(
                project,
                "thread_created",
                ThreadCreatedEvent(
                    thread_id=thread.id,
                    parent_message_id=thread.parent_message_id,
                    project_name=project,
                    created_by=user.user_id,
                    timestamp=thread.created_at,
                ),
            )
        await self._publisher.to_chat(project, "message_received", to_event(record))
        if thread:
            await self._thread_updated(project, thread)
        await self.stop_typing(project, user.user_id)
        if is_command:
            await self._run_command(project, user, record, parsed, parse_error, ip=ip, user_agent=user_agent)
        return {"message_id": record.id, "thread_id": record.thread_id}

    async def _attachments(self, project: str, refs: list[AttachmentRef]) -> list[FileAttachment]:
        out = []
        for index, ref in enumerate(refs):
            record = await self._store.get_attachment(ref.id) if ref.id else None
            if record is None or record.project != project:
                raise ValidationFailed(
                    "Invalid message format",
                    details=[
                        ErrorDetail(
                            path=f"attachments.{index}.id",
                            message=f"upload the file to POST /api/projects/{project}/attachments and pass its id",
                        )
                    ],
                )
            out.append(
                FileAttachment(
                    id=record.id,
                    name=record.name,
                    size=record.size,
                    type=record.type,
                    url=f"/api/projects/{project}/attachments/{record.id}",
                )
            )
        return out

    async def _thread_for(
        self, project: str, user: Principal, thread_id: str | None
    ) -> tuple[ThreadRecord | None, bool]:
        if thread_id is None:
            return None, False
        thread = await self._store.get_thread(thread_id)
        if thread is not None and thread.project == project:
            return thread, False
        parent = await self._store.get_message(thread_id)
        if parent is None or parent.project != project:
            raise NotFoundError(f"No message or thread {thread_id} in this project", code="thread_not_found")
        if parent.thread_id is not None:
            raise ValidationFailed(
                "Invalid message format",
                details=[ErrorDetail(path="thread_id", message="threads open on top-level messages only")],
            )
        existing = await self._store.get_thread_by_parent(parent.id)
        if existing is not None:
            return existing, False
        thread = ThreadRecord(str(uuid.uuid4()), project, parent.id, user.user_id, self._clock.now())
        await self._store.add_thread(thread)
        return thread, True

    async def _thread_updated(self, project: str, thread: ThreadRecord) -> None:
        stats = await self._store.thread_stats(thread.id)
        await self._publisher.to_chat(
            project,
            "thread_updated",
            ThreadUpdatedEvent(
                thread_id=thread.id,
                message_count=stats.message_count,
                last_message_at=stats.last_message_at,
                participants=stats.participants,
            ),
        )

    async def _run_command(
        self,
        project: str,
        user: Principal,
        message: MessageRecord,
        parsed: Any,
        parse_error: ParseError | None,
        *,
        ip: str,
        user_agent: str,
    ) -> None:
        started = time.perf_counter()
        key = parsed.key if parsed is not None else message.content.split()[0][:64]
        if parse_error is not None:
            result: dict[str, Any] = {"success": False, "error": parse_error.message}
            if parse_error.hint:
                result["hint"] = parse_error.hint
        else:
            try:
                result = await self._router.run_command(project, parsed.key, dict(parsed.kwargs), user)
            except PortalError as exc:
                result = {"success": False, "error": exc.message}
        elapsed = time.perf_counter() - started
        self._metrics.command(key if key.startswith("/") and len(key) < 40 else "other", elapsed)
        await self._audit.record(
            user.user_id,
            "command",
            f"{project}:{key}",
            success=bool(result.get("success")),
            ip=ip,
            user_agent=user_agent,
            error=None if result.get("success") else str(result.get("error", ""))[:500],
        )
        text, embed = embeds.render(key, result)
        now = self._clock.now()
        await self._publisher.to_chat(
            project,
            "command_result",
            CommandResultEvent(
                message_id=message.id,
                command=key,
                success=bool(result.get("success")),
                result=result,
                error=None if result.get("success") else str(result.get("error", "Command failed")),
                execution_time=round(elapsed * 1000, 3),
                timestamp=now,
                embed_data=embed,
            ),
        )
        response = await self._store.add_message(
            MessageRecord(
                id=str(uuid.uuid4()),
                project=project,
                user_id=ORCHESTRATOR_USER,
                content=text,
                type="response",
                created_at=now,
                thread_id=message.thread_id,
                embed_data=embed.model_dump(mode="json", exclude_none=True),
            )
        )
        await self._publisher.to_chat(project, "message_received", to_event(response))

    async def history(
        self,
        project: str,
        before: datetime | None,
        thread_id: str | None,
        limit: int,
        before_message_id: str | None = None,
    ) -> dict[str, Any]:
        if thread_id is not None:
            # A thread is named by its own id or by its parent message's id.
            thread = await self._store.get_thread(thread_id) or await self._store.get_thread_by_parent(
                thread_id
            )
            if thread is None or thread.project != project:
                return {"messages": [], "has_more": False, "threads": []}
            thread_id = thread.id
        before_seq = None
        if before_message_id is not None:
            cursor = await self._store.get_message(before_message_id)
            if cursor is None or cursor.project != project:
                raise NotFoundError(f"Message not found: {before_message_id}", code="message_not_found")
            before_seq = cursor.seq
        records = await self._store.list_messages(
            project, before=before, thread_id=thread_id, limit=limit + 1, before_seq=before_seq
        )
        has_more = len(records) > limit
        records = records[-limit:] if has_more else records
        reactions = await self._store.reactions_for([r.id for r in records])
        threads = []
        for thread in await self._store.threads_for([r.id for r in records]):
            stats = await self._store.thread_stats(thread.id)
            threads.append(
                {
                    "thread_id": thread.id,
                    "parent_message_id": thread.parent_message_id,
                    "message_count": stats.message_count,
                    "last_message_at": format_timestamp(stats.last_message_at),
                    "participants": stats.participants,
                }
            )
        return {
            "messages": [to_event(r, reactions.get(r.id)).wire() for r in records],
            "has_more": has_more,
            "threads": threads,
        }

    # --- reactions -----------------------------------------------------------------------------

    async def react(
        self, project: str, user: Principal, message_id: str, emoji: str, on: bool
    ) -> dict[str, Any]:
        message = await self._store.get_message(message_id)
        if message is None or message.project != project:
            raise NotFoundError(f"Message not found: {message_id}", code="message_not_found")
        changed = await self._store.set_reaction(message_id, emoji, user.user_id, on, self._clock.now())
        tallies = (await self._store.reactions_for([message_id])).get(message_id, {})
        reactions = [Reaction(emoji=e, count=len(u), user_ids=u) for e, u in tallies.items()]
        if changed:
            await self._publisher.to_chat(
                project,
                "reaction_updated",
                ReactionUpdatedEvent(message_id=message_id, project_name=project, reactions=reactions),
            )
        return {"message_id": message_id, "reactions": [r.wire() for r in reactions], "changed": changed}

    # --- typing --------------------------------------------------------------------------------

    async def start_typing(self, project: str, user_id: str, skip: list[str]) -> None:
        key = (project, user_id)
        timer = self._typing.pop(key, None)
        if timer is not None:
            timer.cancel()
        else:
            await self._publisher.to_chat(
                project,
                "typing_start",
                TypingEvent(user_id=user_id, project_name=project, timestamp=self._clock.now()),
                skip_sids=skip,
            )
        loop = asyncio.get_running_loop()
        # The typing state lapses by itself, so a closed laptop never leaves "typing…" forever.
        self._typing[key] = loop.call_later(
            self._typing_lapse, lambda: asyncio.ensure_future(self.stop_typing(project, user_id))
        )

    async def stop_typing(self, project: str, user_id: str, skip: list[str] | None = None) -> None:
        timer = self._typing.pop((project, user_id), None)
        if timer is None:
            return
        timer.cancel()
        await self._publisher.to_chat(
            project,
            "typing_stop",
            TypingEvent(user_id=user_id, project_name=project, timestamp=self._clock.now()),
            skip_sids=skip,
        )

    def close(self) -> None:
        for timer in self._typing.values():
            timer.cancel()
        self._typing.clear()
