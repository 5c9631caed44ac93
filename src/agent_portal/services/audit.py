"""The audit trail: every security-relevant action persisted, then emitted to /admin as `user_action`."""

from __future__ import annotations

import logging
from datetime import datetime

from agent_portal.clock import SystemClock
from agent_portal.gateway.publisher import Publisher
from agent_portal.protocol.server_events import UserActionEvent
from agent_portal.storage.store import AuditRecord, Store

log = logging.getLogger(__name__)


class AuditService:
    def __init__(self, store: Store, publisher: Publisher, clock: SystemClock) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock

    async def record(
        self,
        user_id: str,
        action: str,
        resource: str,
        *,
        success: bool,
        ip: str | None = None,
        user_agent: str | None = None,
        error: str | None = None,
    ) -> None:
        record = await self._store.add_audit(
            AuditRecord(
                user_id=user_id[:64],
                action=action,
                resource=resource[:255],
                success=success,
                created_at=self._clock.now(),
                ip_address=ip,
                user_agent=(user_agent or None) and user_agent[:512],
                error=error,
            )
        )
        log.info(
            "audit", extra={"user_id": user_id, "action": action, "resource": resource, "success": success}
        )
        await self._publisher.to_admins("user_action", to_event(record))

    async def page(self, limit: int, before: datetime | None) -> list[UserActionEvent]:
        records = await self._store.list_audit(before=before, limit=limit)
        return [to_event(r) for r in records]


def to_event(record: AuditRecord) -> UserActionEvent:
    return UserActionEvent(
        user_id=record.user_id,
        action=record.action,
        resource=record.resource,
        timestamp=record.created_at,
        ip_address=record.ip_address,
        user_agent=record.user_agent,
        success=record.success,
        error=record.error,
    )
