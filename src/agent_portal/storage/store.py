"""The storage interface every part of the server uses; `open_store(url)` picks the implementation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class UserRecord:
    id: str
    username: str
    role: str
    projects: list[str]
    password_hash: str | None
    created_at: datetime


@dataclass(frozen=True)
class ProjectRecord:
    name: str
    path: str | None
    external: bool
    created_at: datetime
    last_activity: datetime


@dataclass(frozen=True)
class MessageRecord:
    id: str
    project: str
    user_id: str
    content: str
    type: str
    created_at: datetime
    thread_id: str | None = None
    attachments: list[dict[str, Any]] | None = None
    embed_data: dict[str, Any] | None = None
    seq: int = 0


@dataclass(frozen=True)
class ThreadRecord:
    id: str
    project: str
    parent_message_id: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class ThreadStats:
    message_count: int
    last_message_at: datetime
    participants: list[str]


@dataclass(frozen=True)
class AttachmentRecord:
    id: str
    project: str
    name: str
    type: str
    size: int
    uploaded_by: str
    created_at: datetime
    content: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class TestOutputRecord:
    __test__ = False

    cycle_id: str
    sequence_number: int
    project: str
    output_type: str
    content: str
    created_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    user_id: str
    action: str
    resource: str
    success: bool
    created_at: datetime
    ip_address: str | None = None
    user_agent: str | None = None
    error: str | None = None
    id: int = 0


@dataclass(frozen=True)
class ConfigRecord:
    config_type: str
    data: dict[str, Any]
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    """Where a broadcast goes in one namespace: the sockets in any of `rooms`, but those in `skip`."""

    namespace: str
    rooms: tuple[str, ...]
    skip: tuple[str, ...] = ()

    def plain(self) -> list[Any]:
        """As JSON keeps it (the log's `targets` column, the cluster log's header)."""
        return [self.namespace, list(self.rooms), list(self.skip)]

    @classmethod
    def of(cls, plain: Any) -> Target:
        namespace, rooms, skip = plain
        return cls(namespace, tuple(rooms), tuple(skip))


@dataclass(slots=True)
class LogEntry:
    """One broadcast, kept for the recovery window so a reconnecting socket can be sent what it missed.

    One publication is one entry (one offset) however many namespaces it goes to: a `test_output`
    reaches /project/{name} and /monitoring (migration 0005).

    Not frozen: the log numbers a submitted entry once its batch is written (`offset` is 0 until
    then), and treats it as read-only from there. A frozen entry cost two constructions per
    publication, 0.7 us each, against 0.2 for this one (docs/performance.md, session 13)."""

    offset: int
    targets: tuple[Target, ...]
    event: str
    data: Any
    created_at: datetime
    # `[event, data]` as JSON, when the publisher has it already (saves encoding it again).
    encoded: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RecoverySession:
    pid: str
    namespace: str
    sid: str
    user_id: str
    state: dict[str, Any]
    updated_at: datetime
    disconnected_at: datetime | None = None


class VersionConflict(Exception):
    """Someone else saved the project state first; reload and retry."""


class Store(Protocol):
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def add_user(self, user: UserRecord) -> None: ...
    async def get_user(self, user_id: str) -> UserRecord | None: ...
    async def get_user_by_name(self, username: str) -> UserRecord | None: ...
    async def count_users(self) -> int: ...

    async def add_project(self, project: ProjectRecord) -> None: ...
    async def get_project(self, name: str) -> ProjectRecord | None: ...
    async def list_projects(self) -> list[ProjectRecord]: ...
    async def touch_project(self, name: str, at: datetime) -> None: ...

    async def load_project_state(self, project: str) -> tuple[int, dict[str, Any]] | None: ...
    async def save_project_state(
        self, project: str, data: dict[str, Any], expected_version: int, at: datetime
    ) -> int: ...

    async def add_message(self, message: MessageRecord) -> MessageRecord: ...
    async def get_message(self, message_id: str) -> MessageRecord | None: ...
    async def list_messages(
        self,
        project: str,
        *,
        before: datetime | None,
        thread_id: str | None,
        limit: int,
        before_seq: int | None = None,
    ) -> list[MessageRecord]:
        """Newest `limit` messages, oldest first: top-level ones, or one thread's replies."""
        ...

    async def add_thread(self, thread: ThreadRecord) -> None: ...
    async def get_thread(self, thread_id: str) -> ThreadRecord | None: ...
    async def get_thread_by_parent(self, parent_message_id: str) -> ThreadRecord | None: ...
    async def threads_for(self, parent_message_ids: list[str]) -> list[ThreadRecord]: ...
    async def thread_stats(self, thread_id: str) -> ThreadStats: ...
    async def set_reaction(
        self, message_id: str, emoji: str, user_id: str, on: bool, at: datetime
    ) -> bool: ...
    async def reactions_for(self, message_ids: list[str]) -> dict[str, dict[str, list[str]]]: ...

    async def add_attachment(self, attachment: AttachmentRecord) -> None: ...
    async def get_attachment(self, attachment_id: str) -> AttachmentRecord | None: ...

    async def add_test_output(self, records: list[TestOutputRecord]) -> None: ...
    async def list_test_output(
        self, cycle_id: str, after_sequence: int, limit: int
    ) -> list[TestOutputRecord]: ...

    async def add_audit(self, record: AuditRecord) -> AuditRecord: ...
    async def list_audit(self, *, before: datetime | None, limit: int) -> list[AuditRecord]: ...

    async def append_log(self, entries: list[LogEntry]) -> list[int]:
        """Stores broadcasts (their `offset` is ignored) and returns the offsets they were given."""
        ...

    async def log_since(self, since: datetime) -> list[LogEntry]: ...
    async def prune_log(self, before: datetime) -> int: ...

    async def save_sessions(self, sessions: list[RecoverySession]) -> None:
        """Stores sessions (the last one given per pid wins), in one transaction."""
        ...

    async def take_session(self, pid: str) -> RecoverySession | None:
        """Returns and removes a session: a pid is recovered at most once."""
        ...

    async def end_sessions(self, at: datetime) -> None:
        """Marks every session still open as disconnected at `at` (after an unclean stop)."""
        ...

    async def prune_sessions(self, before: datetime) -> int: ...

    async def get_config(self, config_type: str) -> ConfigRecord | None: ...
    async def set_config(self, record: ConfigRecord) -> None: ...
