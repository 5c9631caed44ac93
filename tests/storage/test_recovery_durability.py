"""The recovery log and sessions commit without waiting for the disk, and still outlive the process.

Every broadcast waits for its log entry to commit, so those commits skip the fsync (storage/sql.py)
and a batch of entries is written by one statement; decisions §7 asks that recovery work across a
restart of the server, which these tests kill.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import textwrap
from asyncio.subprocess import PIPE
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from agent_portal.storage import open_store
from agent_portal.storage.sql import SqlStore
from agent_portal.storage.store import LogEntry, Target

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
P = (Target("/project/p", ("p",)),)


async def _setting(store: SqlStore, *, recovery: bool) -> str:
    sqlite = store._engine.url.get_backend_name() == "sqlite"
    query = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    if recovery:
        found = await store._recovery.run(lambda conn: str(conn.exec_driver_sql(query).scalar()))
    else:
        async with store._engine.connect() as conn:
            found = str((await conn.exec_driver_sql(query)).scalar())
    # SQLite answers a number: 1 is NORMAL, 2 FULL
    return {"1": "off", "2": "on"}.get(found, found) if sqlite else found


async def test_only_the_recovery_commits_skip_the_wait_for_the_disk(store_url: str) -> None:
    store = await open_store(store_url)
    assert isinstance(store, SqlStore)
    try:
        assert await _setting(store, recovery=True) == "off"
        assert await _setting(store, recovery=False) == "on"
    finally:
        await store.close()


KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    from datetime import UTC, datetime
    from agent_portal.storage import open_store
    from agent_portal.storage.store import LogEntry, RecoverySession, Target

    async def main() -> None:
        store = await open_store(sys.argv[1])
        at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
        entries = [LogEntry(0, (Target("/project/p", ("p",)),), "test_output", {"n": n}, at) for n in range(3)]
        offsets = await store.append_log(entries)
        await store.save_sessions([RecoverySession("pid1", "/project/p", "sid1", "alice", {"rooms": ["p"]}, at, at)])
        print(",".join(map(str, offsets)), flush=True)
        os._exit(9)  # no close, no dispose: as a killed server

    asyncio.run(main())
    """
)


async def test_the_recovery_log_and_sessions_outlive_a_killed_process(store_url: str) -> None:
    await (await open_store(store_url)).close()  # the schema exists before the writer starts
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_WRITER, store_url, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(writer.communicate(), 60)
    assert writer.returncode == 9, err.decode()
    offsets = [int(o) for o in out.decode().strip().split(",")]
    store = await open_store(store_url)
    try:
        logged = await store.log_since(T0 - timedelta(seconds=1))
        assert [(e.offset, e.data) for e in logged] == [(o, {"n": n}) for n, o in enumerate(offsets)]
        session = await store.take_session("pid1")
        assert session is not None and session.user_id == "alice" and session.state == {"rooms": ["p"]}
    finally:
        await store.close()


def _inserts_of(store: SqlStore) -> list[str]:
    """The INSERT statements the recovery engine runs from now on, as the database is sent them."""
    inserts: list[str] = []

    def seen(statement: str) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement)

    engine = store._recovery.sync_engine
    if engine.dialect.name == "sqlite":
        # The log's batch goes through the DBAPI cursor (storage/sql.py), past SQLAlchemy's
        # events; SQLite's own trace sees every statement.
        sa.event.listen(engine, "checkout", lambda dbapi, *_: dbapi.set_trace_callback(seen))
    else:
        sa.event.listen(engine, "before_cursor_execute", lambda _conn, _cursor, sql, *_: seen(sql))
    return inserts


async def test_a_batch_of_log_entries_is_one_insert(store_url: str) -> None:
    # Every broadcast waits for its batch's commit: on SQLite an ordered INSERT ... RETURNING without
    # the sentinel column went row by row, two trips to aiosqlite's thread per entry (tables.py).
    store = await open_store(store_url)
    assert isinstance(store, SqlStore)
    inserts = _inserts_of(store)
    try:
        entries = [LogEntry(0, P, "test_output", {"n": n}, T0) for n in range(50)]
        offsets = await store.append_log(entries)
        assert len(inserts) == 1, inserts
        assert offsets == sorted(offsets) and len(set(offsets)) == 50
        logged = {e.offset: e.data["n"] for e in await store.log_since(T0 - timedelta(seconds=1))}
        assert [logged[o] for o in offsets] == list(range(50))
    finally:
        await store.close()


async def test_a_log_batch_commits_with_at_most_one_hand_back_from_a_thread(store_url: str) -> None:
    # A broadcast waits for its batch's commit while the loop is busy with the fan-out, and every
    # hand-back from a database thread waits for the loop: through aiosqlite, one per DBAPI call
    # (six a batch). On SQLite the recovery engine commits on the loop when the write lock is free,
    # else runs the whole transaction on its thread (storage/sql.py).
    store = await open_store(store_url)
    assert isinstance(store, SqlStore)
    loop = asyncio.get_running_loop()
    handed_back: list[Any] = []
    original = loop.call_soon_threadsafe

    def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
        handed_back.append(callback)
        return original(callback, *args, **kwargs)

    try:
        entries = [LogEntry(0, P, "test_output", {"n": n}, T0) for n in range(20)]
        await store.append_log(entries[:1])  # the first opens the pool's connection
        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        offsets = await store.append_log(entries[1:])
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        assert len(offsets) == 19
        # SQLite: none, or the executor's one; PostgreSQL: none (asyncpg is the loop's own I/O)
        assert len(handed_back) <= 1, handed_back
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        await store.close()


async def test_offsets_are_never_given_twice_even_once_the_log_is_pruned_empty(store_url: str) -> None:
    # SQLite's plain INTEGER PRIMARY KEY gives max(rowid) + 1: after a quiet window pruned every
    # entry, or on a restart with an empty log, offsets began at 1 again, below those clients held
    # (migration 0004).
    def entry(n: int) -> LogEntry:
        return LogEntry(0, P, "test_output", {"n": n}, T0)

    store = await open_store(store_url)
    try:
        given = await store.append_log([entry(n) for n in range(3)])
        assert await store.prune_log(T0 + timedelta(days=1)) == 3
        after_prune = await store.append_log([entry(3)])
        assert after_prune[0] > max(given)
        await store.prune_log(T0 + timedelta(days=1))
    finally:
        await store.close()
    store = await open_store(store_url)  # a restart on the empty log
    try:
        assert (await store.append_log([entry(4)]))[0] > after_prune[0]
    finally:
        await store.close()


async def test_the_autoincrement_migration_keeps_rows_and_continues_past_every_offset(tmp_path: Any) -> None:
    from alembic import command
    from alembic.config import Config

    from agent_portal.storage.sql import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
        insert = 'INSERT INTO event_log ("offset", namespace, rooms, skip, event, data, created_at) VALUES '
        row = "'/p', '[\"p\"]', '[]', 'e', '{\"n\": %d}', '2026-12-03 12:00:00.000000'"
        conn.exec_driver_sql(insert + f"(41, {row % 41}), (42, {row % 42})")
    engine.dispose()
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")  # upgrades to head
    try:
        kept = await store.log_since(T0 - timedelta(seconds=1))
        assert [(e.offset, e.targets, e.data) for e in kept] == [
            (41, (Target("/p", ("p",)),), {"n": 41}),
            (42, (Target("/p", ("p",)),), {"n": 42}),
        ], "rows of before migration 0005 are one-target rows"
        await store.prune_log(T0 + timedelta(days=1))
        (offset,) = await store.append_log([LogEntry(0, P, "e", {"n": 43}, T0)])
        # past 42, and past any offset pruned before the upgrade: the sequence starts at the clock
        assert offset > datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000
    finally:
        await store.close()


async def test_the_sqlite_recovery_engine_keeps_its_connections_and_drops_one_that_failed(
    tmp_path: Any,
) -> None:
    # One connection for the loop's writes, one for the thread's; a checkout per batch was a quarter
    # of a one-entry batch's CPU (storage/sql.py).
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'held.db'}")
    assert isinstance(store, SqlStore)
    checkouts: list[Any] = []
    sa.event.listen(store._recovery.sync_engine, "checkout", lambda dbapi, *_: checkouts.append(dbapi))

    def entry(n: int) -> LogEntry:
        return LogEntry(0, P, "test_output", {"n": n}, T0)

    def failing(conn: Any) -> None:
        conn.exec_driver_sql("INSERT INTO event_log (event) VALUES ('half a row')")  # NOT NULLs

    async def refused(*, inline: bool) -> None:
        try:
            await store._recovery.run(failing, inline=inline)
        except sa.exc.IntegrityError:
            return
        raise AssertionError("the half row was accepted")

    try:
        for n in range(5):
            await store.append_log([entry(n)])
        await store.log_since(T0)  # a read, on the thread
        assert len(checkouts) == 2, "the loop's connection and the thread's"
        await refused(inline=False)
        await store.log_since(T0)
        assert len(checkouts) == 3, "a fresh thread connection after its failed transaction"
        await refused(inline=True)
        offsets = await store.append_log([entry(5)])
        assert len(checkouts) == 4, "a fresh loop connection after its failed transaction"
        logged = [e.data["n"] for e in await store.log_since(T0 - timedelta(seconds=1))]
        assert logged == list(range(6)) and len(offsets) == 1
        assert store._recovery.deferred == 0
    finally:
        await store.close()


async def test_a_sqlite_log_write_never_waits_for_the_lock_on_the_event_loop(tmp_path: Any) -> None:
    # The store's commits hold SQLite's one write lock while they wait for the disk, and its busy
    # handler waits up to 30 s: a log write tried on the loop must hand such a wait to the thread.
    path = tmp_path / "locked.db"
    store = await open_store(f"sqlite+aiosqlite:///{path}")
    assert isinstance(store, SqlStore)
    loop = asyncio.get_running_loop()
    longest_stall = 0.0

    async def ticker() -> None:
        nonlocal longest_stall
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            longest_stall = max(longest_stall, loop.time() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        first = await store.append_log([LogEntry(0, P, "test_output", {"n": 0}, T0)])
        holder.execute("BEGIN IMMEDIATE")  # another writer, in the middle of its commit
        holder.execute("UPDATE projects SET path = path")
        appending = asyncio.create_task(store.append_log([LogEntry(0, P, "test_output", {"n": 1}, T0)]))
        await asyncio.sleep(0.3)
        assert not appending.done(), "written past another writer's lock"
        assert store._recovery.deferred == 1
        assert longest_stall < 0.2, f"the event loop stalled {longest_stall:.3f} s waiting for the lock"
        holder.execute("COMMIT")
        second = await asyncio.wait_for(appending, 30)
        assert second[0] > first[0]
        logged = [e.data["n"] for e in await store.log_since(T0 - timedelta(seconds=1))]
        assert logged == [0, 1]
        # the lock is free again: the next write is the loop's
        await store.append_log([LogEntry(0, P, "test_output", {"n": 2}, T0)])
        assert store._recovery.deferred == 1
    finally:
        holder.close()
        ticking.cancel()
        await store.close()


def _file_size(path: Path) -> int:
    return path.stat().st_size


async def test_the_sqlite_log_is_checkpointed_after_its_commits_not_in_them(tmp_path: Any) -> None:
    # SQLite's own checkpoint runs in the commit that takes the WAL past 1000 pages and waits for the
    # disk there; the recovery engine turns it off and checkpoints on its thread between writes.
    async def wal_after_writes(interval: float, name: str) -> tuple[int, int]:
        path = tmp_path / f"{name}.db"
        store = await open_store(f"sqlite+aiosqlite:///{path}")
        assert isinstance(store, SqlStore)
        store._recovery.checkpoint_interval = interval
        try:
            for n in range(400):
                batch = [LogEntry(0, P, "test_output", {"n": n, "pad": "x" * 500}, T0) for _ in range(8)]
                await store.append_log(batch)
            wal = _file_size(Path(f"{path}-wal"))
            assert len(await store.log_since(T0 - timedelta(seconds=1))) == 3200
            return wal, store._recovery.checkpoints
        finally:
            await store.close()

    unchecked, none = await wal_after_writes(3600.0, "never")
    checked, many = await wal_after_writes(0.0, "often")
    assert none == 0 and many >= 100
    # past where SQLite's automatic checkpoint would have started it over, and far below that
    assert unchecked > 1.5 * 1000 * 4096 > 4 * checked, (checked, unchecked)


async def test_event_log_rows_of_one_namespace_become_one_target_rows_and_go_back(store_url: str) -> None:
    # Migration 0005 on both databases, with rows in the table: up from 0004, and back down.
    from alembic import command
    from alembic.config import Config

    from agent_portal.storage.sql import MIGRATIONS

    def migrate(to: str, *, down: bool = False) -> Callable[[Any], None]:
        def run(conn: Any) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, to)

        return run

    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(migrate("0004"))
            await conn.exec_driver_sql(
                "INSERT INTO event_log (namespace, rooms, skip, event, data, created_at) VALUES "
                "('/chat/demo', '[\"all\"]', '[\"s1\"]', 'message_received', '{}', '2026-12-03 12:00:00+00')"
            )
            await conn.run_sync(migrate("0005"))
        store = await open_store(store_url)
        try:
            (kept,) = await store.log_since(T0 - timedelta(seconds=1))
            assert kept.targets == (Target("/chat/demo", ("all",), ("s1",)),)
            two = (Target("/project/p", ("p:p",)), Target("/monitoring", ("p:p", "p:*")))
            await store.append_log([LogEntry(0, two, "test_output", {}, T0)])
        finally:
            await store.close()
        async with engine.begin() as conn:
            await conn.run_sync(migrate("0004", down=True))
            rows = (
                await conn.exec_driver_sql("SELECT namespace, rooms, skip FROM event_log ORDER BY 1")
            ).all()
        # a row keeps its first target going down
        assert [
            (ns, json.loads(r) if isinstance(r, str) else r, json.loads(k) if isinstance(k, str) else k)
            for ns, r, k in rows
        ] == [
            ("/chat/demo", ["all"], ["s1"]),
            ("/project/p", ["p:p"], []),
        ]
    finally:
        await engine.dispose()


async def test_the_log_is_pruned_by_offset_without_a_time_index_and_the_index_comes_back_down(
    store_url: str,
) -> None:
    # Migration 0006: the log's index on created_at is gone; pruning goes by offset, up to the
    # first entry logged at or after the cutoff.
    from alembic import command
    from alembic.config import Config

    from agent_portal.storage.sql import MIGRATIONS

    def indexes(conn: Any) -> set[str]:
        return {ix["name"] for ix in sa.inspect(conn).get_indexes("event_log")}

    def downgrade(conn: Any) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")

    store = await open_store(store_url)
    try:
        times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), T0 + timedelta(seconds=3)]
        offsets = await store.append_log(
            [LogEntry(0, P, "test_output", {"n": n}, at) for n, at in enumerate(times)]
        )
        assert await store.prune_log(T0 + timedelta(milliseconds=1500)) == 2
        assert [e.offset for e in await store.log_since(T0 - timedelta(days=1))] == offsets[2:]
        assert await store.prune_log(T0) == 0
        assert await store.prune_log(T0 + timedelta(days=1)) == 2
        assert await store.log_since(T0 - timedelta(days=1)) == []
    finally:
        await store.close()
    engine = create_async_engine(store_url)
    try:
        async with engine.begin() as conn:
            assert "ix_event_log_created" not in await conn.run_sync(indexes)
            await conn.run_sync(downgrade)
            assert "ix_event_log_created" in await conn.run_sync(indexes)
    finally:
        await engine.dispose()
