"""What clients send: one request model per client event (decisions §2–§6, spec §1–§5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from agent_portal.protocol.common import ConfigType, Identifier, ProjectName, Timestamp, WireModel

Uuid = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]


class EmptyRequest(WireModel):
    """An event that carries no fields (typing_start, get_snapshot, ...)."""


class AuthenticateRequest(WireModel):
    token: Annotated[str, Field(min_length=1, max_length=8192)]
    user_id: Identifier | None = None


class JoinProjectRequest(WireModel):
    project_name: ProjectName
    user_id: Identifier | None = None


class LeaveProjectRequest(WireModel):
    project_name: ProjectName


class SubscribeRequest(WireModel):
    events: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=64)]
    project_name: ProjectName | None = None


class ResolveApprovalRequest(WireModel):
    request_id: Identifier
    approved: bool
    comment: Annotated[str, Field(max_length=2000)] | None = None


class AttachmentRef(WireModel):
    """The spec's Joi attachment item. `id` and `url` are our addition: uploads are referenced by id."""

    name: Annotated[str, Field(min_length=1, max_length=255)]
    size: Annotated[int, Field(ge=0, le=10_485_760)]
    type: Annotated[str, Field(min_length=1, max_length=255)]
    id: Identifier | None = None
    url: Annotated[str, Field(max_length=2048)] | None = None


class SendMessageRequest(WireModel):
    """Exactly the spec's Joi `messageSchema` (decisions §8)."""

    content: Annotated[str, Field(min_length=1, max_length=2000)]
    type: Literal["command", "message", "thread_reply"]
    thread_id: Uuid | None = None
    attachments: Annotated[list[AttachmentRef], Field(max_length=5)] | None = None


class GetHistoryRequest(WireModel):
    before: Timestamp | None = None
    # Our addition: a message id as the cursor, exact even when messages share a millisecond.
    before_message_id: Identifier | None = None
    thread_id: Uuid | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class ReactionRequest(WireModel):
    message_id: Identifier
    emoji: Annotated[str, Field(min_length=1, max_length=32)]


class GetTestOutputRequest(WireModel):
    cycle_id: Identifier
    after_sequence: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=5000)] = 1000


class GetConfigRequest(WireModel):
    config_type: ConfigType


class UpdateConfigRequest(WireModel):
    config_type: ConfigType
    changes: Annotated[dict[str, Any], Field(min_length=1)]
    reason: Annotated[str, Field(max_length=500)] | None = None


class GetAuditLogRequest(WireModel):
    limit: Annotated[int, Field(ge=1, le=500)] = 100
    before: Timestamp | None = None


class PublishRequest(WireModel):
    """An external orchestrator publishing one event (decisions §6); `data` is checked per event."""

    event: Annotated[str, Field(min_length=1, max_length=64)]
    data: dict[str, Any]


class CommandReply(WireModel):
    """An external orchestrator's ack to a `command`."""

    success: bool
    result: Any = None
    error: str | None = None
