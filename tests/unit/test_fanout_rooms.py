"""FanoutManager's room bookkeeping (gateway/fanout.py) ends where python-socketio's does, after any
sequence of connects, joins, leaves, room closes and disconnects; only a disconnect costs less."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import socketio
from bidict import bidict
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio.base_manager import BaseManager

from agent_portal.gateway.fanout import FanoutManager, PendingSids, Room

NAMESPACES = ["/", "/chat"]
ROOMS = ["a", "b", "c"]

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), st.integers(0, 4), st.sampled_from(NAMESPACES)),
        st.tuples(st.just("enter"), st.integers(0, 9), st.sampled_from(NAMESPACES), st.sampled_from(ROOMS)),
        st.tuples(st.just("leave"), st.integers(0, 9), st.sampled_from(NAMESPACES), st.sampled_from(ROOMS)),
        st.tuples(st.just("close"), st.sampled_from(NAMESPACES), st.sampled_from(ROOMS)),
        st.tuples(st.just("pre_disconnect"), st.integers(0, 9), st.sampled_from(NAMESPACES)),
        st.tuples(st.just("disconnect"), st.integers(0, 9), st.sampled_from(NAMESPACES)),
        st.tuples(st.just("await_ack"), st.integers(0, 9), st.sampled_from(NAMESPACES)),
    ),
    max_size=40,
)


def now(coroutine: Any) -> Any:
    """The value of a coroutine that never suspends (the managers' pre_connect)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("suspended")


def manager(kind: type[Any]) -> Any:
    ids = (f"sid{i}" for i in itertools.count())
    made = kind()
    made.set_server(
        SimpleNamespace(
            eio=SimpleNamespace(generate_id=lambda: next(ids)), packet_class=SimpleNamespace(json=None)
        )
    )
    return made


def apply(made: Any, operation: tuple[Any, ...], sids: list[tuple[str, str]]) -> None:
    name, *args = operation
    if name == "connect":
        eio_sid, namespace = f"eio{args[0]}", args[1]
        sid = now(made.pre_connect(eio_sid, namespace))
        if sid is not None:
            BaseManager.connect(made, sid, namespace)
            sids.append((sid, namespace))
        assert made.is_connected(sids[-1][0], sids[-1][1]) or sid is None
        return
    if name == "close":
        made.basic_close_room(args[1], args[0])
        return
    if not sids:
        return
    sid, namespace = sids[args[0] % len(sids)]
    if name == "enter" and made.is_connected(sid, namespace):
        made.basic_enter_room(sid, namespace, args[2])
    elif name == "leave":
        made.basic_leave_room(sid, namespace, args[2])
    elif name == "pre_disconnect" and made.is_connected(sid, namespace):
        # as the server calls it: only for a connected sid (twice, the library's list would hold
        # the sid twice and keep one after the disconnect)
        made.pre_disconnect(sid, namespace)
    elif name == "disconnect":
        made.basic_disconnect(sid, namespace)
    elif name == "await_ack":  # an emit with a callback, waiting for the client's ack
        made._generate_ack_id(sid, print)


def state(made: Any) -> Any:
    rooms = {
        ns: {room: dict(members) for room, members in by_room.items()} for ns, by_room in made.rooms.items()
    }
    acks = {sid: sorted(k for k in by_id if k) for sid, by_id in made.callbacks.items()}  # 0 holds a counter
    # the pending sids in order, whatever holds them (a list in the library, PendingSids in ours)
    pending = [
        {ns: list(sids) for ns, sids in p.items()} for p in (made.pending_connect, made.pending_disconnect)
    ]
    return rooms, pending, acks


@settings(max_examples=300)
@given(OPERATIONS)
def test_rooms_end_as_the_library_leaves_them(operations: list[tuple[Any, ...]]) -> None:
    ours, theirs = manager(FanoutManager), manager(socketio.AsyncManager)
    our_sids: list[tuple[str, str]] = []
    their_sids: list[tuple[str, str]] = []
    for operation in operations:
        apply(ours, operation, our_sids)
        apply(theirs, operation, their_sids)
        assert state(ours) == state(theirs), operation
    for (namespace, sid), rooms in ours._rooms_of.items():
        # the index holds exactly the rooms the sid is in
        assert set(rooms) == {room for room, members in ours.rooms[namespace].items() if sid in members}
        assert len(rooms) == len(set(rooms))


def test_a_disconnect_does_not_look_through_the_other_sessions_rooms() -> None:
    made = manager(FanoutManager)
    for i in range(3):
        sid = now(made.pre_connect(f"eio{i}", "/"))
        BaseManager.connect(made, sid, "/")
    looked: list[Any] = []

    class Watched(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            looked.append("items")
            return super().items()

        def copy(self) -> Any:
            looked.append("copy")
            return super().copy()

    made.rooms["/"] = Watched(made.rooms["/"])
    made.basic_disconnect("sid1", "/")
    assert looked == []
    assert set(made.rooms["/"]) == {None, "sid0", "sid2"}


def test_sids_connecting_or_disconnecting_are_looked_up_by_hash() -> None:
    """With 10,000 clients dropping at once, the library's lists made every `is_connected` a scan."""
    made = manager(FanoutManager)
    sids = [now(made.pre_connect(f"eio{i}", "/")) for i in range(3)]
    assert isinstance(made.pending_connect["/"], PendingSids)
    for sid in sids:
        BaseManager.connect(made, sid, "/")
    assert made.pending_connect == {}
    made.pre_disconnect(sids[0], "/")
    made.pre_disconnect(sids[2], "/")
    assert isinstance(made.pending_disconnect["/"], PendingSids)
    assert [made.is_connected(sid, "/") for sid in sids] == [False, True, False]
    made.basic_disconnect(sids[2], "/")
    assert list(made.pending_disconnect["/"]) == [sids[0]]
    made.basic_disconnect(sids[0], "/")
    assert made.pending_disconnect == {}


def test_only_the_connected_sids_room_is_a_bidict() -> None:
    made = manager(FanoutManager)
    sid = now(made.pre_connect("eio0", "/"))
    BaseManager.connect(made, sid, "/")
    made.basic_enter_room(sid, "/", "a")
    rooms = made.rooms["/"]
    assert isinstance(rooms[None], bidict)
    assert type(rooms[sid]) is Room and type(rooms["a"]) is Room
    assert made.sid_from_eio_sid("eio0", "/") == sid  # the backward look-up the bidict is kept for
    assert made.participants("/", ["a", sid]) == {sid: "eio0"}
    assert list(made.get_participants("/", "a")) == [(sid, "eio0")]
