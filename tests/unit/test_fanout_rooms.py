"""FanoutManager's room bookkeeping (gateway/fanout.py) ends where python-socketio's does, after any
sequence of connects, joins, leaves, room closes and disconnects; only a disconnect costs less."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import socketio
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio.base_manager import BaseManager

from agent_portal.gateway.fanout import FanoutManager

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
        # the managers' synchronous bookkeeping (AsyncManager's coroutines only wrap it)
        sid = BaseManager.pre_connect(made, eio_sid, namespace)
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
    elif name == "pre_disconnect" and namespace in made.rooms:
        BaseManager.pre_disconnect(made, sid, namespace)
    elif name == "disconnect":
        made.basic_disconnect(sid, namespace)
    elif name == "await_ack":  # an emit with a callback, waiting for the client's ack
        made._generate_ack_id(sid, print)


def state(made: Any) -> Any:
    rooms = {
        ns: {room: dict(members) for room, members in by_room.items()} for ns, by_room in made.rooms.items()
    }
    acks = {sid: sorted(k for k in by_id if k) for sid, by_id in made.callbacks.items()}  # 0 holds a counter
    return rooms, made.pending_connect, made.pending_disconnect, acks


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
        sid = BaseManager.pre_connect(made, f"eio{i}", "/")
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
