"""The relational schema as the queries see it. Migrations in `migrations/versions` create it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert_sentinel,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255)),
    Column("role", String(16), nullable=False),
    Column("projects", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("path", Text),
    Column("external", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_activity", DateTime(timezone=True), nullable=False),
)

project_state = Table(
    "project_state",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("data", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("project", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("type", String(16), nullable=False),
    Column("thread_id", String(64)),
    Column("attachments", JSON),
    Column("embed_data", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_chat_messages_project_seq", "project", "seq"),
    Index("ix_chat_messages_thread", "thread_id", "seq"),
)

chat_threads = Table(
    "chat_threads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("parent_message_id", String(64), nullable=False, unique=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

chat_reactions = Table(
    "chat_reactions",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("emoji", String(32), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

test_output = Table(
    "test_output",
    metadata,
    Column("cycle_id", String(64), primary_key=True),
    Column("sequence_number", Integer, primary_key=True),
    Column("project", String(64), nullable=False),
    Column("output_type", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource", String(255), nullable=False),
    Column("ip_address", String(64)),
    Column("user_agent", String(512)),
    Column("success", Boolean, nullable=False),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_log_created", "created_at"),
)

config = Table(
    "config",
    metadata,
    Column("config_type", String(16), primary_key=True),
    Column("data", JSON, nullable=False),
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

event_log = Table(
    "event_log",
    metadata,
    Column("offset", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # [[namespace, rooms, skip], ...]: every namespace the broadcast goes to (migration 0005)
    Column("targets", JSON, nullable=False, server_default="[]"),
    Column("event", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Numbers each row of a batch so that one multi-row INSERT ... RETURNING can hand back the
    # offsets in the order of the entries. Without it SQLite, which cannot tie a new rowid to its
    # row of VALUES, fell back to one INSERT per entry: two trips to aiosqlite's thread each,
    # 14 ms a batch on the product bench (docs/performance.md, migration 0003).
    insert_sentinel("sentinel"),
    # No index on created_at: the log is pruned and read by offset, which follows time (migration 0006).
    # An offset is never given twice, even once the rows above it are pruned (migration 0004).
    sqlite_autoincrement=True,
)

recovery_sessions = Table(
    "recovery_sessions",
    metadata,
    Column("pid", String(64), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("sid", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("disconnected_at", DateTime(timezone=True)),
)
