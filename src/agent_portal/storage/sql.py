"""The Store on SQLAlchemy: SQLite by default (aiosqlite; the recovery log on a thread of its own),
PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent_portal.errors import ConflictError
from agent_portal.jsontext import compact_dumps
from agent_portal.storage import tables as t
from agent_portal.storage.store import (
    AttachmentRecord,
    AuditRecord,
    ConfigRecord,
    LogEntry,
    MessageRecord,
    ProjectRecord,
    RecoverySession,
    Target,
    TestOutputRecord,
    ThreadRecord,
    ThreadStats,
    UserRecord,
    VersionConflict,
)

MIGRATIONS = Path(__file__).parent / "migrations"

T = TypeVar("T")

log = logging.getLogger(__name__)

# While the SQLite recovery log is written, its WAL is checkpointed at most this often (RecoveryEngine).
CHECKPOINT_INTERVAL = 1.0


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _migrate(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


class SqlStore:
    """`engine` for everything but the recovery log and sessions, which go through `recovery`.

    A recovery commit does not wait for the disk (`RecoveryEngine`): every broadcast
    waits for its log entry to commit (gateway/recovery.py), and on this machine's disk about one
    commit in a hundred took 40-280 ms waiting for its flush, the broadcasts behind it with it (the
    product bench's p99 at N = 100, docs/performance.md). Such a commit still survives the server
    process: what a restart needs (decisions §7). Only a crash of the machine or of PostgreSQL
    can lose the last commits of a log whose entries matter for 120 s.
    """

    def __init__(self, engine: AsyncEngine, recovery: RecoveryEngine) -> None:
        self._engine = engine
        self._recovery = recovery

    @classmethod
    async def open(cls, url: str) -> SqlStore:
        engine = _engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_migrate)
        return cls(engine, RecoveryEngine.open(url))

    async def close(self) -> None:
        await self._engine.dispose()
        await self._recovery.dispose()

    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # --- users ---------------------------------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    t.users.insert().values(
                        id=user.id,
                        username=user.username,
                        password_hash=user.password_hash,
                        role=user.role,
                        projects=list(user.projects),
                        created_at=user.created_at,
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(f"User already exists: {user.username}") from exc

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._one_user(t.users.c.id == user_id)

    async def get_user_by_name(self, username: str) -> UserRecord | None:
        return await self._one_user(t.users.c.username == username)

    async def _one_user(self, where: sa.ColumnElement[bool]) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(t.users).where(where))).mappings().first()
        if row is None:
            return None
        return UserRecord(
            id=row["id"],
            username=row["username"],
            role=row["role"],
            projects=list(row["projects"]),
            password_hash=row["password_hash"],
            created_at=_utc(row["created_at"]),
        )

    async def count_users(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(t.users))).scalar_one())

    # --- projects ------------------------------------------------------------------------------

    async def add_project(self, project: ProjectRecord) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    t.projects.insert().values(
                        name=project.name,
                        path=project.path,
                        external=project.external,
                        created_at=project.created_at,
                        last_activity=project.last_activity,
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(f"Project already exists: {project.name}") from exc

    async def get_project(self, name: str) -> ProjectRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(t.projects).where(t.projects.c.name == name)))
                .mappings()
                .first()
            )
        return None if row is None else _project(row)

    async def list_projects(self) -> list[ProjectRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.projects).order_by(t.projects.c.name))).mappings().all()
        return [_project(row) for row in rows]

    async def touch_project(self, name: str, at: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(t.projects.update().where(t.projects.c.name == name).values(last_activity=at))

    # --- project state (the orchestrator's aggregate, one JSON document per project) -----------

    async def load_project_state(self, project: str) -> tuple[int, dict[str, Any]] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.project_state.c.version, t.project_state.c.data).where(
                        t.project_state.c.project == project
                    )
                )
            ).first()
        return None if row is None else (int(row[0]), dict(row[1]))

    async def save_project_state(
        self, project: str, data: dict[str, Any], expected_version: int, at: datetime
    ) -> int:
        new_version = expected_version + 1
        async with self._engine.begin() as conn:
            if expected_version == 0:
                try:
                    await conn.execute(
                        t.project_state.insert().values(project=project, version=1, data=data, updated_at=at)
                    )
                except IntegrityError as exc:
                    raise VersionConflict(project) from exc
                return 1
            # Optimistic concurrency: the write only lands on the version it was computed from.
            result = await conn.execute(
                t.project_state.update()
                .where(t.project_state.c.project == project, t.project_state.c.version == expected_version)
                .values(version=new_version, data=data, updated_at=at)
            )
            if result.rowcount != 1:
                raise VersionConflict(project)
        return new_version

    # --- chat ----------------------------------------------------------------------------------

    async def add_message(self, message: MessageRecord) -> MessageRecord:
        async with self._engine.begin() as conn:
            # A per-project sequence gives a total order for paging even when timestamps tie.
            seq = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(t.chat_messages.c.seq), 0) + 1).where(
                        t.chat_messages.c.project == message.project
                    )
                )
            ).scalar_one()
            await conn.execute(
                t.chat_messages.insert().values(
                    id=message.id,
                    seq=seq,
                    project=message.project,
                    user_id=message.user_id,
                    content=message.content,
                    type=message.type,
                    thread_id=message.thread_id,
                    attachments=message.attachments,
                    embed_data=message.embed_data,
                    created_at=message.created_at,
                )
            )
        return MessageRecord(**{**message.__dict__, "seq": int(seq)})

    async def get_message(self, message_id: str) -> MessageRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(t.chat_messages).where(t.chat_messages.c.id == message_id)))
                .mappings()
                .first()
            )
        return None if row is None else _message(row)

    async def list_messages(
        self,
        project: str,
        *,
        before: datetime | None,
        thread_id: str | None,
        limit: int,
        before_seq: int | None = None,
    ) -> list[MessageRecord]:
        m = t.chat_messages
        query = sa.select(m).where(m.c.project == project)
        # The channel shows top-level messages; a thread's replies are read with its id.
        query = query.where(m.c.thread_id.is_(None) if thread_id is None else m.c.thread_id == thread_id)
        if before is not None:
            query = query.where(m.c.created_at < before)
        if before_seq is not None:
            query = query.where(m.c.seq < before_seq)
        query = query.order_by(t.chat_messages.c.seq.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_message(row) for row in reversed(rows)]

    async def add_thread(self, thread: ThreadRecord) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(t.chat_threads.insert().values(**thread.__dict__))
        except IntegrityError as exc:
            raise ConflictError("Thread already exists") from exc

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        return await self._one_thread(t.chat_threads.c.id == thread_id)

    async def get_thread_by_parent(self, parent_message_id: str) -> ThreadRecord | None:
        return await self._one_thread(t.chat_threads.c.parent_message_id == parent_message_id)

    async def threads_for(self, parent_message_ids: list[str]) -> list[ThreadRecord]:
        if not parent_message_ids:
            return []
        c = t.chat_threads
        query = sa.select(c).where(c.c.parent_message_id.in_(parent_message_ids))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            ThreadRecord(
                r["id"], r["project"], r["parent_message_id"], r["created_by"], _utc(r["created_at"])
            )
            for r in rows
        ]

    async def _one_thread(self, where: sa.ColumnElement[bool]) -> ThreadRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(t.chat_threads).where(where))).mappings().first()
        if row is None:
            return None
        return ThreadRecord(
            id=row["id"],
            project=row["project"],
            parent_message_id=row["parent_message_id"],
            created_by=row["created_by"],
            created_at=_utc(row["created_at"]),
        )

    async def thread_stats(self, thread_id: str) -> ThreadStats:
        m = t.chat_messages
        async with self._engine.connect() as conn:
            count, last = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.max(m.c.created_at)).where(m.c.thread_id == thread_id)
                )
            ).one()
            users = (
                await conn.execute(
                    sa.select(m.c.user_id)
                    .where(m.c.thread_id == thread_id)
                    .group_by(m.c.user_id)
                    .order_by(sa.func.min(m.c.seq))
                )
            ).scalars()
            participants = list(users)
        return ThreadStats(int(count), _utc(last) if last else datetime.now(UTC), participants)

    async def set_reaction(self, message_id: str, emoji: str, user_id: str, on: bool, at: datetime) -> bool:
        r = t.chat_reactions
        async with self._engine.begin() as conn:
            if on:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            r.insert().values(
                                message_id=message_id, emoji=emoji, user_id=user_id, created_at=at
                            )
                        )
                except IntegrityError:
                    return False
                return True
            result = await conn.execute(
                r.delete().where(r.c.message_id == message_id, r.c.emoji == emoji, r.c.user_id == user_id)
            )
            return bool(result.rowcount)

    async def reactions_for(self, message_ids: list[str]) -> dict[str, dict[str, list[str]]]:
        if not message_ids:
            return {}
        r = t.chat_reactions
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(r.c.message_id, r.c.emoji, r.c.user_id)
                    .where(r.c.message_id.in_(message_ids))
                    .order_by(r.c.created_at)
                )
            ).all()
        out: dict[str, dict[str, list[str]]] = {}
        for message_id, emoji, user_id in rows:
            out.setdefault(message_id, {}).setdefault(emoji, []).append(user_id)
        return out

    # --- attachments ---------------------------------------------------------------------------

    async def add_attachment(self, attachment: AttachmentRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(t.attachments.insert().values(**attachment.__dict__))

    async def get_attachment(self, attachment_id: str) -> AttachmentRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(t.attachments).where(t.attachments.c.id == attachment_id)))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return AttachmentRecord(**{**dict(row), "created_at": _utc(row["created_at"])})

    # --- test output ---------------------------------------------------------------------------

    async def add_test_output(self, records: list[TestOutputRecord]) -> None:
        if not records:
            return
        async with self._engine.begin() as conn:
            await conn.execute(t.test_output.insert(), [r.__dict__ for r in records])

    async def list_test_output(
        self, cycle_id: str, after_sequence: int, limit: int
    ) -> list[TestOutputRecord]:
        o = t.test_output
        query = (
            sa.select(o)
            .where(o.c.cycle_id == cycle_id, o.c.sequence_number > after_sequence)
            .order_by(o.c.sequence_number)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [TestOutputRecord(**{**dict(row), "created_at": _utc(row["created_at"])}) for row in rows]

    # --- audit ---------------------------------------------------------------------------------

    async def add_audit(self, record: AuditRecord) -> AuditRecord:
        values = {k: v for k, v in record.__dict__.items() if k != "id"}
        async with self._engine.begin() as conn:
            result = await conn.execute(t.audit_log.insert().values(**values))
            new_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        return AuditRecord(**{**values, "id": int(new_id)})

    async def list_audit(self, *, before: datetime | None, limit: int) -> list[AuditRecord]:
        a = t.audit_log
        query = sa.select(a)
        if before is not None:
            query = query.where(a.c.created_at < before)
        query = query.order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [AuditRecord(**{**dict(row), "created_at": _utc(row["created_at"])}) for row in rows]

    # --- recovery: event log and sessions ------------------------------------------------------

    async def append_log(self, entries: list[LogEntry]) -> list[int]:
        if not entries:
            return []
        append = _append_sqlite if self._recovery.dialect_name == "sqlite" else _append_core
        return await self._recovery.run(lambda conn: append(conn, entries), inline=True)

    async def log_since(self, since: datetime) -> list[LogEntry]:
        log = t.event_log
        query = sa.select(log).where(log.c.created_at >= since).order_by(log.c.offset)

        def read(conn: Connection) -> list[Any]:
            return list(conn.execute(query).mappings().all())

        return [
            LogEntry(
                offset=int(row["offset"]),
                targets=tuple(Target.of(target) for target in row["targets"]),
                event=row["event"],
                data=row["data"],
                created_at=_utc(row["created_at"]),
            )
            for row in await self._recovery.run(read)
        ]

    async def prune_log(self, before: datetime) -> int:
        # Up to the first entry logged at or after `before`, by offset: entries are logged in the
        # order of their times (one writer, gateway/recovery.py), so a scan in offset order stops
        # after the rows to delete, and the table needs no index on `created_at`, whose B-tree
        # insert was a tenth of each entry's append (migration 0006).
        log = t.event_log
        first_kept = sa.select(log.c.offset).where(log.c.created_at >= before).order_by(log.c.offset).limit(1)

        def prune(conn: Connection) -> int:
            kept = conn.execute(first_kept).scalar()
            # Two statements: as one (a subquery, OR its NULL case) SQLite scanned the whole table
            # to delete (EXPLAIN QUERY PLAN); this way the delete is a rowid range.
            delete = log.delete() if kept is None else log.delete().where(log.c.offset < kept)
            return int(conn.execute(delete).rowcount or 0)

        return await self._recovery.run(prune)

    async def save_sessions(self, sessions: list[RecoverySession]) -> None:
        # One upsert for the whole batch (gateway/recovery.py groups the saves): a connect saves its
        # session, and with one transaction per save, concurrent connects queued on SQLite's write
        # lock and its busy handler's sleeps (docs/performance.md).
        newest = {session.pid: dict(session.__dict__) for session in sessions}
        if not newest:
            return
        if self._recovery.dialect_name == "sqlite":
            rows = list(newest.values())
            await self._recovery.run(lambda conn: _save_sessions_sqlite(conn, rows), inline=True)
            return
        s = t.recovery_sessions
        insert = (sqlite_insert if self._recovery.dialect_name == "sqlite" else postgresql_insert)(s)
        upsert = insert.on_conflict_do_update(
            index_elements=[s.c.pid],
            set_={c.name: insert.excluded[c.name] for c in s.columns if c.name != "pid"},
        )
        rows = list(newest.values())
        await self._recovery.run(lambda conn: conn.execute(upsert, rows))

    async def take_session(self, pid: str) -> RecoverySession | None:
        s = t.recovery_sessions

        def take(conn: Connection) -> Any:
            row = conn.execute(sa.select(s).where(s.c.pid == pid)).mappings().first()
            if row is None:
                return None
            deleted = conn.execute(s.delete().where(s.c.pid == pid))
            return row if deleted.rowcount == 1 else None  # else taken by a concurrent reconnect

        row = await self._recovery.run(take)
        if row is None:
            return None
        disconnected = row["disconnected_at"]
        return RecoverySession(
            pid=row["pid"],
            namespace=row["namespace"],
            sid=row["sid"],
            user_id=row["user_id"],
            state=dict(row["state"]),
            updated_at=_utc(row["updated_at"]),
            disconnected_at=_utc(disconnected) if disconnected else None,
        )

    async def end_sessions(self, at: datetime) -> None:
        s = t.recovery_sessions
        update = s.update().where(s.c.disconnected_at.is_(None)).values(disconnected_at=at)
        await self._recovery.run(lambda conn: conn.execute(update))

    async def prune_sessions(self, before: datetime) -> int:
        s = t.recovery_sessions
        delete = s.delete().where(s.c.disconnected_at < before)
        return await self._recovery.run(lambda conn: int(conn.execute(delete).rowcount or 0))

    # --- config --------------------------------------------------------------------------------

    async def get_config(self, config_type: str) -> ConfigRecord | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(t.config).where(t.config.c.config_type == config_type)))
                .mappings()
                .first()
            )
        if row is None:
            return None
        return ConfigRecord(row["config_type"], dict(row["data"]), row["updated_by"], _utc(row["updated_at"]))

    async def set_config(self, record: ConfigRecord) -> None:
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                t.config.update()
                .where(t.config.c.config_type == record.config_type)
                .values(data=record.data, updated_by=record.updated_by, updated_at=record.updated_at)
            )
            if updated.rowcount == 0:
                await conn.execute(t.config.insert().values(**record.__dict__))


class RecoveryEngine:
    """Where the recovery log and sessions are written: `run` runs a function of one Connection in
    one transaction, committed when it returns.

    Every broadcast waits for its log batch to commit, so the trips a transaction makes count. On
    SQLite the function runs on a thread of its own, on a sync engine: one trip. Through aiosqlite each
    DBAPI call (cursor, execute, fetch, close, commit, the pool's reset) was a trip to its thread and
    back through the event loop, which at saturation is busy with the fan-out: product broadcast
    N = 100, 5 alternating pairs, p50 4.34 -> 3.54 ms and p99 10.4 -> 7.92 ms (docs/performance.md).
    On PostgreSQL the trips are the network's; the function runs on asyncpg (`run_sync`).

    The commits do not wait for the disk: SQLite `synchronous=NORMAL`, PostgreSQL
    `synchronous_commit=off` (see SqlStore). Nor for a checkpoint: SQLite's automatic one runs in
    the commit that takes the WAL past 1000 pages, copying them into the database and flushing it,
    and such a commit took 9.8 ms (5.5 of CPU) against ~0.4, the product bench's p99 at N = 100
    (docs/performance.md, session 13). Here the thread checkpoints after a write has been handed
    back, at most every `checkpoint_interval` seconds: a write that comes meanwhile waits for it, as
    before, but the batch that filled the WAL does not. On the writers' own thread, not beside them,
    so that the checkpoint catches up with the WAL's end and the next write starts it over (a
    checkpoint racing a steady writer never does, and the WAL grows).

    A short write (a log batch, a batch of session saves: `inline=True`) is first tried on the event
    loop itself, on a connection of its own that never waits: when another connection holds the write
    lock (the store's commits hold it while they wait for the disk), SQLite answers "busy" at once and
    the write goes to the thread, which waits there; so does a write while a checkpoint is queued or
    running. Such a commit, with no lock to wait for and no flush, is CPU only, and it saves the two
    hand-offs to the thread and back, which waited behind a loop busy with the fan-out: in an
    instrumented run at saturation the loop saw 10-19 ms per batch for the thread's 2-6 ms.
    Product N = 100, 8 pairs: p99 5.05-10.07 ms (median 6.14) -> 5.64-6.08 (5.79); deliveries/s
    higher in 7 of the 8, median 692k -> 722k (docs/performance.md, session 13).
    """

    def __init__(
        self,
        sync_engine: sa.Engine,
        async_engine: AsyncEngine | None,
        thread: ThreadPoolExecutor | None,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        self.sync_engine = sync_engine
        self.dialect_name = sync_engine.dialect.name
        self._async = async_engine
        self._thread = thread
        self._held: Connection | None = None  # SQLite: the connection its thread writes with
        self._loop_conn: Connection | None = None  # SQLite: the one the loop writes with
        # SQLite: inline writes that found the write lock taken and went to the thread.
        self.deferred = 0
        # SQLite: when the last checkpoint was asked for (loop time; None before the first write),
        # the one queued or running, and how many ran.
        self.checkpoint_interval = checkpoint_interval
        self._last_checkpoint: float | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self.checkpoints = 0

    @classmethod
    def open(cls, url: str) -> RecoveryEngine:
        if url.startswith("sqlite"):
            engine = sa.create_engine(
                sa.make_url(url).set(drivername="sqlite"),
                json_serializer=compact_dumps,
                # the engine's connections are opened and used only on its one thread
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            sa.event.listen(engine, "connect", _sqlite_recovery_pragmas)
            return cls(engine, None, ThreadPoolExecutor(1, thread_name_prefix="recovery-db"))
        async_engine = _engine(url, recovery=True)
        return cls(async_engine.sync_engine, async_engine, None)

    async def run(self, work: Callable[[Connection], T], *, inline: bool = False) -> T:
        """`work` in one transaction. `inline`: a short write, which on SQLite may be committed on
        the event loop when the write lock is free (see the class)."""
        if self._async is not None:
            async with self._async.begin() as conn:
                return await conn.run_sync(work)
        assert self._thread is not None
        loop = asyncio.get_running_loop()
        # Not beside a checkpoint: queued behind it on the thread, a write lets it reach the WAL's end.
        if inline and self._checkpointing is None:
            done_here = self._on_loop(work)
            if done_here is not _BUSY:
                self._checkpoint_soon(loop)
                return done_here  # type: ignore[return-value]
            self.deferred += 1
        result = await loop.run_in_executor(self._thread, self._in_transaction, work)
        self._checkpoint_soon(loop)
        return result

    def _on_loop(self, work: Callable[[Connection], T]) -> T | object:
        """`work` committed on the loop's own connection, or `_BUSY` (rolled back) when another
        connection holds the write lock: that connection never waits for it."""
        conn = self._loop_conn
        if conn is None:
            conn = self._loop_conn = self.sync_engine.connect()
            conn.exec_driver_sql("PRAGMA busy_timeout=0")  # "busy" at once, not after sleeps
            conn.commit()  # ends SQLAlchemy's transaction (pysqlite sent no BEGIN)
        try:
            with conn.begin():
                return work(conn)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            if _sqlite_busy(exc):
                return _BUSY
            self._drop_loop_connection()
            raise
        except BaseException:
            self._drop_loop_connection()
            raise

    def _drop_loop_connection(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.invalidate()  # not back to the pool: its busy timeout is not the pool's
            self._loop_conn.close()
            self._loop_conn = None

    def _checkpoint_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        if self._last_checkpoint is None:
            self._last_checkpoint = now
        if self._checkpointing is not None or now - self._last_checkpoint < self.checkpoint_interval:
            return
        self._last_checkpoint = now
        self._checkpointing = loop.run_in_executor(self._thread, self._checkpoint)
        self._checkpointing.add_done_callback(self._checkpointed)

    def _checkpoint(self) -> None:
        # PASSIVE: copies back what no reader still needs and flushes the database without waiting
        # for readers; the next write starts the WAL over once all of it is in.
        if self._held is None:
            self._held = self.sync_engine.connect()
        conn = self._held
        try:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            conn.commit()  # ends SQLAlchemy's transaction (pysqlite sent no BEGIN)
        except BaseException:
            self._held = None
            conn.close()
            raise

    def _checkpointed(self, done: asyncio.Future[None]) -> None:
        self._checkpointing = None
        self.checkpoints += 1
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.warning("checkpointing the recovery log failed: %s", exc)

    def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        if self._thread is None:
            with self.sync_engine.begin() as conn:
                return work(conn)
        # SQLite: the thread keeps its connection. A checkout and a check-in (with its reset) per
        # batch were a quarter or more of a one-entry batch's CPU (bench/log_append.py, store side,
        # two runs each: 288 and 296 us -> 161 and 217). A connection whose transaction failed is
        # dropped.
        if self._held is None:
            self._held = self.sync_engine.connect()
        conn = self._held
        try:
            with conn.begin():
                return work(conn)
        except BaseException:
            self._held = None
            conn.close()
            raise

    def _close(self) -> None:
        if self._loop_conn is not None:
            self._loop_conn.invalidate()
            self._loop_conn = None
        if self._held is not None:
            self._held.close()
            self._held = None
        self.sync_engine.dispose()

    async def dispose(self) -> None:
        if self._async is not None:
            await self._async.dispose()
            return
        assert self._thread is not None
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)


# What `RecoveryEngine._on_loop` answers when the write lock is taken.
_BUSY = object()


def _sqlite_busy(exc: Exception) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, with any extended code, raised by sqlite3 (the log's writes use
    its cursor) or wrapped by SQLAlchemy."""
    code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


# Rows per INSERT on SQLite: 5 parameters each, within SQLite's 32,766 per statement.
_SQLITE_LOG_ROWS = 1000


@functools.lru_cache(maxsize=64)
def _sqlite_log_insert(rows: int) -> str:
    values = ",".join(["(?,?,?,?,?)"] * rows)
    return (
        "INSERT INTO event_log (targets, event, data, created_at, sentinel) VALUES "
        f'{values} RETURNING "offset", sentinel'
    )


def _sqlite_datetime(value: datetime) -> str:
    """A UTC datetime as SQLAlchemy's SQLite DATETIME stores it (read back by `log_since`, compared
    as text by `prune_log`): 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if value.tzinfo is not UTC:  # the clock's are UTC: this costs half of converting each
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


# One multi-row INSERT ... RETURNING for a whole group-committed batch (gateway/recovery.py), the
# offsets in the order of the entries; one statement per entry cost a round trip each.
_LOG_INSERT = t.event_log.insert().returning(t.event_log.c.offset, sort_by_parameter_order=True)


def _append_core(conn: Connection, entries: list[LogEntry]) -> list[int]:
    """The recovery log's batch through SQLAlchemy Core (PostgreSQL; `bench/log_append.py`'s
    reference on SQLite)."""
    rows = [
        {
            "targets": [target.plain() for target in entry.targets],
            "event": entry.event,
            "data": entry.data,
            "created_at": entry.created_at,
        }
        for entry in entries
    ]
    return [int(offset) for (offset,) in conn.execute(_LOG_INSERT, rows).all()]


def _data_json(entry: LogEntry) -> str:
    """The JSON of `entry.data`, cut from the `[event, data]` text the publisher encoded once, when
    it has it (what the log's writer thread does per entry holds the GIL the event loop wants)."""
    encoded = entry.encoded
    if encoded is not None:
        prefix = f'["{entry.event}",'
        if encoded.startswith(prefix) and encoded.endswith("]"):
            return encoded[len(prefix) : -1]
    return compact_dumps(entry.data)


def _append_sqlite(conn: Connection, entries: list[LogEntry]) -> list[int]:
    """The recovery log's batch on SQLite, written through the DBAPI cursor of SQLAlchemy's own
    transaction: one multi-row INSERT ... RETURNING per 1000 entries, each row numbered by the
    sentinel column so that the offsets can be put back in the order of the entries (SQLite does not
    promise RETURNING's order).

    SQLAlchemy's Core insert made the same statement with its per-row work (bind processors for the
    DATETIME and the JSON columns, parameter construction, RETURNING's rows). `bench/log_append.py`
    times both through the recovery engine: CPU per entry this way against Core's, 0.95x in batches of
    one entry (the transaction dominates), 0.65-0.75x in batches of 4 to 64, which is what the log
    writes at saturation; every broadcast waits for its batch. Core's DATETIME also stored a time of
    another zone as that zone's wall clock; `_sqlite_datetime` stores UTC.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    offsets: list[int] = []
    try:
        for start in range(0, len(entries), _SQLITE_LOG_ROWS):
            chunk = entries[start : start + _SQLITE_LOG_ROWS]
            params: list[Any] = []
            targets: tuple[Target, ...] | None = None
            targets_json = ""
            for number, entry in enumerate(chunk):
                if entry.targets != targets:  # a batch is mostly one stream's, to the same targets
                    targets = entry.targets
                    targets_json = compact_dumps([target.plain() for target in targets])
                params += (
                    targets_json,
                    entry.event,
                    _data_json(entry),
                    _sqlite_datetime(entry.created_at),
                    number,
                )
            returned = cursor.execute(_sqlite_log_insert(len(chunk)), params).fetchall()
            returned.sort(key=operator.itemgetter(1))
            offsets += [int(offset) for offset, _ in returned]
    finally:
        cursor.close()
    return offsets


_SESSION_COLUMNS = ("pid", "namespace", "sid", "user_id", "state", "updated_at", "disconnected_at")
_SQLITE_SESSION_UPSERT = (
    f"INSERT INTO recovery_sessions ({', '.join(_SESSION_COLUMNS)}) VALUES ({', '.join('?' * 7)}) "
    "ON CONFLICT (pid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _SESSION_COLUMNS if c != "pid")
)


def _save_sessions_sqlite(conn: Connection, sessions: list[dict[str, Any]]) -> None:
    """Recovery sessions upserted on SQLite through the DBAPI cursor, as `_append_sqlite` writes the
    log: every connect and every subscribe saves one. Core's upsert, built and compiled per batch,
    was about 8 % of the CPU of a connection set-up on the product bench; product idle N = 5000,
    3 alternating pairs: 888 / 770 / 850 -> 985 / 819 / 916 set-ups/s (docs/performance.md)."""
    rows = [
        (
            session["pid"],
            session["namespace"],
            session["sid"],
            session["user_id"],
            compact_dumps(session["state"]),
            _sqlite_datetime(session["updated_at"]),
            None if session["disconnected_at"] is None else _sqlite_datetime(session["disconnected_at"]),
        )
        for session in sessions
    ]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(_SQLITE_SESSION_UPSERT, rows)
    finally:
        cursor.close()


def _engine(url: str, *, recovery: bool = False) -> AsyncEngine:
    # JSON columns written by orjson: the recovery log's three per broadcast, through the
    # stdlib, were 3.4 % of the product bench's CPU (docs/performance.md). Read by the stdlib,
    # which keeps integers past 64 bits (orjson reads them as floats).
    kwargs: dict[str, Any] = {"json_serializer": compact_dumps}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # the recovery log is written by one batch at a time (gateway/recovery.py)
        kwargs.update(pool_size=2 if recovery else 10, max_overflow=10, pool_pre_ping=True)
        if recovery:
            kwargs["connect_args"] = {"server_settings": {"synchronous_commit": "off"}}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, synchronous: str = "FULL") -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; the busy timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on the disk before it returns. NORMAL (in WAL mode): on the disk at the
    # next checkpoint, and safe from a crash of the process meanwhile.
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def _sqlite_recovery_pragmas(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record, synchronous="NORMAL")
    # no checkpoint in a commit: RecoveryEngine checkpoints after one
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _project(row: Any) -> ProjectRecord:
    return ProjectRecord(
        name=row["name"],
        path=row["path"],
        external=bool(row["external"]),
        created_at=_utc(row["created_at"]),
        last_activity=_utc(row["last_activity"]),
    )


def _message(row: Any) -> MessageRecord:
    return MessageRecord(
        id=row["id"],
        project=row["project"],
        user_id=row["user_id"],
        content=row["content"],
        type=row["type"],
        created_at=_utc(row["created_at"]),
        thread_id=row["thread_id"],
        attachments=row["attachments"],
        embed_data=row["embed_data"],
        seq=int(row["seq"]),
    )
