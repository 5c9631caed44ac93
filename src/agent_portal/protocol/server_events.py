"""What the server emits: one model per server event of the spec (and of decisions §2–§6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agent_portal.protocol.common import (
    AgentMetrics,
    CodeMetrics,
    ConfigType,
    EmbedData,
    ErrorDetail,
    FileAttachment,
    Reaction,
    Story,
    Task,
    TaskStatus,
    TDDState,
    TestResult,
    Timestamp,
    WireModel,
    WorkflowState,
)

Progress = Annotated[int, Field(ge=0, le=100)]
Millis = Annotated[float, Field(ge=0)]

# --- /portal -----------------------------------------------------------------------------------


class JoinedProjectEvent(WireModel):
    project_name: str
    current_state: WorkflowState
    active_users: int = Field(ge=0)
    last_activity: Timestamp


class UserJoinedEvent(WireModel):
    user_id: str
    project_name: str
    timestamp: Timestamp


class UserLeftEvent(WireModel):
    user_id: str
    project_name: str
    timestamp: Timestamp


# --- identity and errors (every namespace) -------------------------------------------------------


class AuthenticatedEvent(WireModel):
    user_id: str
    permissions: list[str]


class AuthenticationFailedEvent(WireModel):
    message: str
    code: str


class ValidationErrorEvent(WireModel):
    message: str
    details: list[ErrorDetail]


class RateLimitedEvent(WireModel):
    message: Literal["Rate limit exceeded"] = "Rate limit exceeded"
    retry_after: int = Field(ge=0, description="milliseconds until an event would be accepted")


# --- /project/{name} ---------------------------------------------------------------------------


class StateChangeEvent(WireModel):
    project_name: str
    old_state: WorkflowState
    new_state: WorkflowState
    timestamp: Timestamp
    triggered_by: str
    command: str | None = None
    reason: str | None = None


class TaskUpdateEvent(WireModel):
    project_name: str
    task_id: str
    task_type: str
    status: TaskStatus
    progress: Progress
    agent_type: str
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    error: str | None = None
    metadata: dict[str, Any] | None = None


class ApprovalRequestEvent(WireModel):
    project_name: str
    request_id: str
    task: Task
    reason: str
    created_at: Timestamp
    retry_count: int = Field(ge=0)
    timeout_at: Timestamp


class ApprovalResolvedEvent(WireModel):
    project_name: str
    request_id: str
    approved: bool
    resolved_by: str
    resolved_at: Timestamp
    comment: str | None = None


class SprintProgressEvent(WireModel):
    project_name: str
    sprint_id: str
    total_stories: int = Field(ge=0)
    completed_stories: int = Field(ge=0)
    failed_stories: int = Field(ge=0)
    in_progress_stories: int = Field(ge=0)
    estimated_completion: Timestamp
    velocity: float = Field(ge=0)


class BacklogUpdatedEvent(WireModel):
    project_name: str
    change_type: Literal["added", "removed", "updated", "reordered"]
    story_id: str
    story: Story | None = None
    old_position: int | None = Field(default=None, ge=0)
    new_position: int | None = Field(default=None, ge=0)


# --- /chat/{name} ------------------------------------------------------------------------------


class MessageReceivedEvent(WireModel):
    message_id: str
    project_name: str
    user_id: str
    content: str
    # "message" is our addition: the spec has no type for a plain chat message.
    type: Literal["command", "response", "system", "thread", "message"]
    timestamp: Timestamp
    thread_id: str | None = None
    attachments: list[FileAttachment] | None = None
    reactions: list[Reaction] | None = None
    embed_data: EmbedData | None = None


class CommandResultEvent(WireModel):
    message_id: str
    command: str
    success: bool
    result: Any = None
    error: str | None = None
    execution_time: Millis
    timestamp: Timestamp
    embed_data: EmbedData | None = None


class TypingEvent(WireModel):
    user_id: str
    project_name: str
    timestamp: Timestamp


class ThreadCreatedEvent(WireModel):
    thread_id: str
    parent_message_id: str
    project_name: str
    created_by: str
    timestamp: Timestamp


class ThreadUpdatedEvent(WireModel):
    thread_id: str
    message_count: int = Field(ge=0)
    last_message_at: Timestamp
    participants: list[str]


class ReactionUpdatedEvent(WireModel):
    """Our addition: reactions change after a message was delivered, so clients need the new tally."""

    message_id: str
    project_name: str
    reactions: list[Reaction]


# --- /monitoring -------------------------------------------------------------------------------


class AgentActivityEvent(WireModel):
    agent_type: str
    project_name: str
    action: str
    status: Literal["started", "completed", "failed", "paused"]
    task_id: str | None = None
    story_id: str | None = None
    timestamp: Timestamp
    duration: Millis | None = None
    metrics: AgentMetrics | None = None
    error: str | None = None


class NetworkIO(WireModel):
    bytes_sent: int = Field(ge=0)
    bytes_received: int = Field(ge=0)


class SystemMetricsEvent(WireModel):
    timestamp: Timestamp
    cpu_usage: float = Field(ge=0, le=100)
    memory_usage: float = Field(ge=0, le=100)
    disk_usage: float = Field(ge=0, le=100)
    network_io: NetworkIO
    active_connections: int = Field(ge=0)
    active_projects: int = Field(ge=0)
    active_tasks: int = Field(ge=0)
    error_rate: float = Field(ge=0)
    uptime: float = Field(ge=0, description="seconds")


class TDDCycleStartedEvent(WireModel):
    project_name: str
    cycle_id: str
    story_id: str
    started_by: str
    estimated_duration: Millis
    timestamp: Timestamp


class TDDStateChangeEvent(WireModel):
    project_name: str
    cycle_id: str
    old_state: TDDState
    new_state: TDDState
    timestamp: Timestamp
    phase_duration: Millis | None = None
    test_results: list[TestResult] | None = None
    code_metrics: CodeMetrics | None = None


class TestOutputEvent(WireModel):
    __test__ = False

    project_name: str
    cycle_id: str
    output_type: Literal["stdout", "stderr", "test_result"]
    content: str
    timestamp: Timestamp
    sequence_number: int = Field(ge=1)


# --- /admin ------------------------------------------------------------------------------------


class ConfigChangedEvent(WireModel):
    config_type: ConfigType
    changed_by: str
    changes: dict[str, Any]
    timestamp: Timestamp
    reason: str | None = None


class UserActionEvent(WireModel):
    user_id: str
    action: str
    resource: str
    timestamp: Timestamp
    ip_address: str | None = None
    user_agent: str | None = None
    success: bool
    error: str | None = None


# --- /orchestrator -----------------------------------------------------------------------------


class OrchestratorCommandEvent(WireModel):
    request_id: str
    project_name: str
    command: str
    args: dict[str, Any]
    user_id: str
