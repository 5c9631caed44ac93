"""FanoutBatch (gateway/fanout.py): broadcasts sent together reach each socket in the order they were
added, exactly the sockets each one names, and a run of them to the same sockets in one write."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from socketio.base_manager import BaseManager

from agent_portal.gateway.engine import PortalPacket
from agent_portal.gateway.fanout import FanoutManager
from agent_portal.gateway.wsproto import text_frame
from agent_portal.gateway.wstransport import DirectWebSocketSocket

NAMESPACES = ["/project/p", "/monitoring"]
ROOMS = ["a", "b", "c"]


class Recorder:
    """A socket's connection: what was written to it, one entry per write."""

    def __init__(self, backlog: int = 0) -> None:
        self.writes: list[bytes] = []
        self.backlog = backlog

    def write_frame(self, frame: bytes) -> int:
        self.writes.append(frame)
        return self.backlog + sum(map(len, self.writes))

    def abort(self) -> None:
        self.aborted = True

    def close_now(self, code: int = 1000, reason: str = "") -> None:
        raise AssertionError("a batch never closes a connection")

    def receive_with(self, receiver: Callable[[str], bool] | None) -> bool:
        raise AssertionError("a batch reads nothing")

    def park(self, receiver: Callable[[str], bool], wake: Callable[[], None]) -> bool:
        raise AssertionError("a batch reads nothing")


class Live:
    """A FanoutManager with sockets on WebSocket connections of ours (recorded) or on polling."""

    def __init__(self) -> None:
        ids = (f"sid{i}" for i in itertools.count())
        self.sockets: dict[str, DirectWebSocketSocket] = {}
        self.server = SimpleNamespace(
            eio=SimpleNamespace(generate_id=lambda: next(ids), sockets=self.sockets),
            packet_class=PortalPacket,
            ping_timeout=20,
            create_queue=asyncio.Queue,
        )
        self.manager = FanoutManager()
        self.manager.set_server(self.server)
        self.sids: dict[str, tuple[str, str]] = {}  # name -> (namespace, sid)

    def connect(self, name: str, namespace: str, rooms: list[str], *, polling: bool = False) -> str:
        eio_sid = f"eio-{name}"
        if eio_sid not in self.sockets:
            socket = DirectWebSocketSocket(self.server, eio_sid)
            socket.writer = None if polling else Recorder()
            self.sockets[eio_sid] = socket
        sid = BaseManager.pre_connect(self.manager, eio_sid, namespace)
        BaseManager.connect(self.manager, sid, namespace)
        for room in rooms:
            self.manager.basic_enter_room(sid, namespace, room)
        self.sids[name] = (namespace, sid)
        return str(sid)

    def written(self, name: str) -> list[bytes]:
        writer = self.sockets[f"eio-{name}"].writer
        assert isinstance(writer, Recorder)
        return writer.writes


def frames(*parts: str) -> bytes:
    """The WebSocket frames of Engine.IO MESSAGE packets carrying these Socket.IO packets."""
    return b"".join(text_frame("4" + part) for part in parts)


async def test_a_run_to_the_same_sockets_goes_to_each_in_one_write_in_order() -> None:
    live = Live()
    for name in ("s1", "s2"):
        live.connect(name, "/monitoring", ["a"])
    batch = live.manager.batch()
    for n in range(5):
        batch.add(f"2/monitoring,[{n}]", "/monitoring", ["a"])
    assert live.written("s1") == [], "nothing is written before send"
    await batch.send()
    for name in ("s1", "s2"):
        assert live.written(name) == [frames(*(f"2/monitoring,[{n}]" for n in range(5)))]


async def test_different_rooms_with_the_same_members_make_one_run_and_skip_is_honoured() -> None:
    live = Live()
    s1 = live.connect("s1", "/project/p", ["a", "b"])
    live.connect("s2", "/project/p", ["a", "b"])
    batch = live.manager.batch()
    batch.add("2/project/p,[1]", "/project/p", ["a"])
    batch.add("2/project/p,[2]", "/project/p", ["b"])  # test_output, then state_change: same sockets
    batch.add("2/project/p,[3]", "/project/p", ["a"], [s1])
    await batch.send()
    assert live.written("s1") == [frames("2/project/p,[1]", "2/project/p,[2]")]
    assert live.written("s2") == [frames("2/project/p,[1]", "2/project/p,[2]"), frames("2/project/p,[3]")]


async def test_overlapping_audiences_keep_each_sockets_order() -> None:
    live = Live()
    live.connect("s1", "/project/p", ["a"])
    live.connect("s2", "/project/p", ["a", "b"])
    live.connect("s3", "/project/p", ["b"])
    batch = live.manager.batch()
    for n, room in enumerate(["a", "b", "a"]):
        batch.add(f"2/project/p,[{n}]", "/project/p", [room])
    await batch.send()
    assert b"".join(live.written("s1")) == frames("2/project/p,[0]", "2/project/p,[2]")
    assert b"".join(live.written("s2")) == frames("2/project/p,[0]", "2/project/p,[1]", "2/project/p,[2]")
    assert b"".join(live.written("s3")) == frames("2/project/p,[1]")


async def test_a_polling_socket_gets_the_same_packets_queued_in_order() -> None:
    live = Live()
    live.connect("ws", "/monitoring", ["a"])
    live.connect("poll", "/monitoring", ["a"], polling=True)
    batch = live.manager.batch()
    for n in range(3):
        batch.add(f"2/monitoring,[{n}]", "/monitoring", ["a"])
    await batch.send()
    queue = live.sockets["eio-poll"].queue
    assert [queue.get_nowait().data for _ in range(queue.qsize())] == [
        f"2/monitoring,[{n}]" for n in range(3)
    ]


async def test_a_socket_whose_buffer_passes_the_limit_is_cut_off() -> None:
    live = Live()
    live.connect("slow", "/monitoring", ["a"])
    live.connect("fast", "/monitoring", ["a"])
    slow = live.sockets["eio-slow"]
    assert isinstance(slow.writer, Recorder)
    slow.writer.backlog = slow.outbound_limit
    batch = live.manager.batch()
    batch.add("2/monitoring,[1]", "/monitoring", ["a"])
    await batch.send()
    assert slow._close_reason is not None and getattr(slow.writer, "aborted", False)
    assert live.sockets["eio-fast"]._close_reason is None


BROADCASTS = st.lists(
    st.tuples(
        st.sampled_from(NAMESPACES),
        st.lists(st.sampled_from(ROOMS), min_size=1, max_size=3, unique=True),
        st.lists(st.integers(0, 5), max_size=2),  # sockets skipped, by index
    ),
    max_size=25,
)
MEMBERSHIPS = st.lists(
    st.tuples(st.sampled_from(NAMESPACES), st.lists(st.sampled_from(ROOMS), max_size=3, unique=True)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300)
@given(MEMBERSHIPS, BROADCASTS)
async def test_every_socket_gets_exactly_its_broadcasts_in_the_order_they_were_added(
    memberships: list[tuple[str, list[str]]], broadcasts: list[tuple[str, list[str], list[int]]]
) -> None:
    live = Live()
    # up to three connections, some with a socket on both namespaces
    members: list[tuple[str, str, set[str], str]] = []
    for i, (namespace, rooms) in enumerate(memberships):
        name = f"c{i % 3}"
        if any(m[0] == name and m[1] == namespace for m in members):
            continue
        members.append((name, namespace, set(rooms), live.connect(name, namespace, rooms)))
    expected: dict[tuple[str, str], list[str]] = {(m[0], m[1]): [] for m in members}
    batch = live.manager.batch()
    for n, (namespace, rooms, skipped) in enumerate(broadcasts):
        skip = [members[i % len(members)][3] for i in skipped]
        part = f"2{namespace},[{n}]"
        batch.add(part, namespace, rooms, skip)
        for name, ns, joined, sid in members:
            if ns == namespace and joined & set(rooms) and sid not in skip:
                expected[(name, ns)].append(part)
    await batch.send()
    for name in {m[0] for m in members}:
        got = b"".join(live.written(name))
        # a connection's sockets on two namespaces: each namespace's part in order, interleaved as
        # the runs were written; read back per namespace
        for namespace in NAMESPACES:
            want = expected.get((name, namespace), [])
            assert _of_namespace(got, namespace) == want


def _of_namespace(written: bytes, namespace: str) -> list[str]:
    """The Socket.IO packets of `namespace` in a stream of unmasked text frames."""
    found: list[str] = []
    at = 0
    while at < len(written):
        length = written[at + 1]
        at += 2
        if length == 126:
            length = int.from_bytes(written[at : at + 2], "big")
            at += 2
        text = written[at : at + length].decode()
        at += length
        assert text[0] == "4"
        if text[1:].startswith(f"2{namespace},"):
            found.append(text[1:])
    return found


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.just("x" * 70_000)))
def test_a_run_frames_its_text_as_the_engine_io_packet_would_be_framed(part: str | bytes) -> None:
    # The batch frames a run's parts itself instead of building a packet per part (gateway/fanout.py).
    from engineio import packet as eio_packet

    from agent_portal.gateway.fanout import _frame_of_part
    from agent_portal.gateway.wstransport import frame_of

    assert _frame_of_part(part) == frame_of(eio_packet.Packet(eio_packet.MESSAGE, part))


@given(st.text(max_size=30))
def test_an_appended_argument_is_the_json_the_library_would_write(value: str) -> None:
    # offsets (ASCII digits) are quoted as they are; anything else goes through json.dumps
    import json

    from agent_portal.gateway.fanout import with_last_argument

    args = json.dumps(["test_output", {"n": 1}], separators=(",", ":"))
    assert json.loads(with_last_argument(args, value)) == ["test_output", {"n": 1}, value]
    assert with_last_argument(args, "1733583600000001").endswith(',"1733583600000001"]')
