"""One contract, every backend: the same store tests on SQLite and on PostgreSQL (a real server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from agent_portal.errors import ConflictError
from agent_portal.storage import Store, open_store
from agent_portal.storage.store import (
    AttachmentRecord,
    AuditRecord,
    ConfigRecord,
    MessageRecord,
    ProjectRecord,
    TestOutputRecord,
    ThreadRecord,
    UserRecord,
    VersionConflict,
)

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_users_and_projects(store: Store) -> None:
    await store.add_user(UserRecord("alice", "alice", "member", ["demo"], "hash", T0))
    with pytest.raises(ConflictError):
        await store.add_user(UserRecord("alice", "alice", "member", [], None, T0))
    user = await store.get_user_by_name("alice")
    assert user is not None and user.projects == ["demo"] and user.created_at == T0
    assert await store.count_users() == 1
    await store.add_project(ProjectRecord("demo", "/tmp/demo", False, T0, T0))
    with pytest.raises(ConflictError):
        await store.add_project(ProjectRecord("demo", None, True, T0, T0))
    await store.touch_project("demo", T0 + timedelta(hours=1))
    project = await store.get_project("demo")
    assert project is not None and project.last_activity == T0 + timedelta(hours=1)
    assert [p.name for p in await store.list_projects()] == ["demo"]


async def test_project_state_is_versioned(store: Store) -> None:
    assert await store.load_project_state("demo") is None
    assert await store.save_project_state("demo", {"state": "IDLE"}, 0, T0) == 1
    with pytest.raises(VersionConflict):
        await store.save_project_state("demo", {"state": "X"}, 0, T0)
    assert await store.save_project_state("demo", {"state": "BACKLOG_READY", "n": [1, 2]}, 1, T0) == 2
    with pytest.raises(VersionConflict):
        await store.save_project_state("demo", {"state": "lost update"}, 1, T0)
    assert await store.load_project_state("demo") == (2, {"state": "BACKLOG_READY", "n": [1, 2]})


async def test_chat_messages_threads_reactions(store: Store) -> None:
    for i in range(5):
        await store.add_message(
            MessageRecord(f"m{i}", "demo", "alice", f"text {i}", "message", T0 + timedelta(seconds=i))
        )
    await store.add_message(MessageRecord("x", "other", "bob", "elsewhere", "message", T0))
    page = await store.list_messages("demo", before=None, thread_id=None, limit=2)
    assert [m.id for m in page] == ["m3", "m4"]
    older = await store.list_messages("demo", before=page[0].created_at, thread_id=None, limit=10)
    assert [m.id for m in older] == ["m0", "m1", "m2"]
    await store.add_thread(ThreadRecord("t1", "demo", "m0", "bob", T0))
    with pytest.raises(ConflictError):
        await store.add_thread(ThreadRecord("t2", "demo", "m0", "bob", T0))
    await store.add_message(
        MessageRecord("r1", "demo", "bob", "re", "thread", T0 + timedelta(minutes=1), thread_id="t1")
    )
    await store.add_message(
        MessageRecord("r2", "demo", "alice", "re", "thread", T0 + timedelta(minutes=2), thread_id="t1")
    )
    stats = await store.thread_stats("t1")
    assert (stats.message_count, stats.participants) == (2, ["bob", "alice"])
    assert (await store.get_thread_by_parent("m0")) is not None
    assert await store.set_reaction("m1", "👍", "alice", True, T0) is True
    assert await store.set_reaction("m1", "👍", "alice", True, T0) is False
    assert await store.set_reaction("m1", "👍", "bob", True, T0) is True
    assert await store.reactions_for(["m1", "m2"]) == {"m1": {"👍": ["alice", "bob"]}}
    assert await store.set_reaction("m1", "👍", "alice", False, T0) is True
    assert await store.reactions_for(["m1"]) == {"m1": {"👍": ["bob"]}}


async def test_attachments_output_audit_config(store: Store) -> None:
    await store.add_attachment(AttachmentRecord("a1", "demo", "f.txt", "text/plain", 3, "alice", T0, b"abc"))
    attachment = await store.get_attachment("a1")
    assert attachment is not None and attachment.content == b"abc"
    await store.add_test_output(
        [TestOutputRecord("c1", n, "demo", "stdout", f"line {n}", T0) for n in range(1, 6)]
    )
    tail = await store.list_test_output("c1", 2, 2)
    assert [r.sequence_number for r in tail] == [3, 4]
    first = await store.add_audit(AuditRecord("alice", "login", "auth", True, T0, "127.0.0.1", "ua"))
    second = await store.add_audit(
        AuditRecord("bob", "join", "demo", False, T0 + timedelta(seconds=1), error="x")
    )
    assert second.id > first.id
    newest = await store.list_audit(before=None, limit=1)
    assert [r.action for r in newest] == ["join"]
    assert [r.action for r in await store.list_audit(before=newest[0].created_at, limit=10)] == ["login"]
    await store.set_config(ConfigRecord("security", {"events_per_second": 5}, "root", T0))
    await store.set_config(ConfigRecord("security", {"events_per_second": 7}, "root", T0))
    config = await store.get_config("security")
    assert config is not None and config.data == {"events_per_second": 7}


async def test_migrations_are_idempotent(store: Store, store_url: str) -> None:
    await store.add_user(UserRecord("alice", "alice", "member", [], None, T0))
    # Opening the same database again runs the migrations again: nothing to do, nothing lost.
    again = await open_store(store_url)
    try:
        assert await again.get_user("alice") is not None
    finally:
        await again.close()


async def test_event_log_batches_get_increasing_offsets_in_order(store: Store) -> None:
    from agent_portal.storage.store import LogEntry, Target

    def entry(n: int) -> LogEntry:
        skip = ("sid",) if n == 1 else ()
        targets = (Target("/project/p", ("p:p",), skip), Target("/monitoring", ("m",)))
        return LogEntry(0, targets if n == 2 else targets[:1], "test_output", {"n": n}, T0)

    assert await store.append_log([]) == []
    first = await store.append_log([entry(0)])
    batch = await store.append_log([entry(n) for n in range(1, 6)])
    offsets = first + batch
    assert offsets == sorted(offsets) and len(set(offsets)) == 6
    logged = await store.log_since(T0 - timedelta(seconds=1))
    assert [e.offset for e in logged] == offsets
    assert [e.data["n"] for e in logged] == list(range(6))
    assert logged[1].targets == (Target("/project/p", ("p:p",), ("sid",)),)
    assert logged[2].targets == (Target("/project/p", ("p:p",)), Target("/monitoring", ("m",)))


async def test_event_log_data_comes_back_as_it_went_in(store: Store) -> None:
    # JSON columns are written by orjson where it can (jsontext.compact_dumps) and by the stdlib
    # where it cannot: integers past 64 bits, non-ASCII text, nesting all come back unchanged.
    from agent_portal.storage.store import LogEntry, Target

    plain = {"text": 'é ✓ \u2028 "q"', "nested": [{"a": [1.5, None, True, 2**63 - 1]}]}  # orjson's
    big = {"big": 2**70, "neg": -(2**65)}  # the stdlib's
    entries = [LogEntry(0, (Target("/monitoring", ("m",)),), "test_output", d, T0) for d in (plain, big)]
    offsets = await store.append_log(entries)
    logged = {e.offset: e.data for e in await store.log_since(T0 - timedelta(seconds=1))}
    assert [logged[o] for o in offsets] == [plain, big]


async def test_event_log_data_comes_back_as_it_went_in_when_the_publisher_encoded_it(store: Store) -> None:
    # The SQLite log cuts the data's JSON from the publisher's `[event, data]` text (storage/sql.py);
    # an event name JSON writes otherwise (escaped) is encoded again.
    from agent_portal.jsontext import compact_dumps
    from agent_portal.storage.store import LogEntry, Target

    cases = [("test_output", {"text": 'é ✓ "q"', "n": [1.5, None]}), ('odd"name', {"big": 2**70}), ("e", {})]
    monitoring = (Target("/monitoring", ("m",)),)
    entries = [LogEntry(0, monitoring, e, d, T0, compact_dumps([e, d])) for e, d in cases]
    offsets = await store.append_log(entries)
    logged = {e.offset: (e.event, e.data) for e in await store.log_since(T0 - timedelta(seconds=1))}
    assert [logged[o] for o in offsets] == cases


async def test_event_log_times_come_back_as_they_went_in_and_prune_by_them(store: Store) -> None:
    # SQLite's log rows are written through the DBAPI (storage/sql.py), in the text SQLAlchemy's
    # DATETIME reads back and compares; a whole second and another zone included.
    from datetime import timezone

    from agent_portal.storage.store import LogEntry, Target

    times = [
        T0,
        T0 + timedelta(microseconds=1),
        (T0 + timedelta(seconds=2)).astimezone(timezone(timedelta(hours=-5))),
    ]
    entries = [LogEntry(0, (Target("/monitoring", ("m",)),), "test_output", {}, at) for at in times]
    await store.append_log(entries)
    assert [e.created_at for e in await store.log_since(T0)] == times
    assert [e.created_at for e in await store.log_since(T0 + timedelta(microseconds=1))] == times[1:]
    assert await store.prune_log(T0 + timedelta(seconds=1)) == 2
    assert [e.created_at for e in await store.log_since(T0 - timedelta(days=1))] == times[2:]


async def test_sessions_are_upserted_in_one_batch_and_taken_once(store: Store) -> None:
    from agent_portal.storage.store import RecoverySession

    def session(pid: str, sid: str, ended: datetime | None = None) -> RecoverySession:
        return RecoverySession(pid, "/project/p", sid, "alice", {"rooms": [sid]}, T0, ended)

    await store.save_sessions([])
    await store.save_sessions([session("a", "s1"), session("b", "s1")])
    # an update of "a" and, within one batch, two saves of "c": the last one given wins
    await store.save_sessions([session("a", "s2", T0), session("c", "s1"), session("c", "s3")])
    a, b, c = [await store.take_session(pid) for pid in "abc"]
    assert a is not None and a.sid == "s2" and a.state == {"rooms": ["s2"]} and a.disconnected_at == T0
    assert b is not None and b.sid == "s1" and b.disconnected_at is None
    assert c is not None and c.sid == "s3"
    assert await store.take_session("a") is None  # a pid is recovered at most once
