"""Broadcast fan-out: one encode and one WebSocket frame per broadcast, no task per recipient.

python-socketio's `AsyncManager.emit` encodes once but then creates one task per recipient and
waits for all of them: with the writer loops' tasks, half of stock python-socketio's broadcast
time (docs/performance.md, profile). `FanoutManager` replaces it through the documented seam,
`AsyncServer(client_manager=...)`: it writes the same frame (built once, `wstransport.frame_of`)
to every recipient on our WebSocket and hands the packet to the `send_now` of the others, which
queues it for a polling session, without yielding; a recipient's packets therefore keep the order
of the emits. Emits with a callback (a per-recipient ack id) stay with the library.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from agent_portal.gateway.wsproto import binary_frame, text_frame
from agent_portal.gateway.wstransport import DirectWebSocketSocket


def encode_event(namespace: str, args: str) -> str:
    """A Socket.IO EVENT packet from the JSON of its arguments, as `socketio.packet.Packet.encode`
    writes it: type, namespace unless "/", then the array (no ack id, no binary attachments)."""
    prefix = str(sio_packet.EVENT) if namespace == "/" else f"{sio_packet.EVENT}{namespace},"
    return prefix + args


def with_last_argument(args: str, value: str) -> str:
    """The JSON array `args` with the string `value` appended (a recovery offset)."""
    # an offset is ASCII digits, which JSON writes as they are: json.dumps was 1 % of the product's CPU
    quoted = f'"{value}"' if value.isascii() and value.isdigit() else json.dumps(value)
    return f"{args[:-1]},{quoted}]"


class Room(dict[str, str]):
    """The members of a room, sid -> Engine.IO sid: a dict where the library keeps a bidict.

    Only the connected-sids room (None) is looked up backwards (`sid_from_eio_sid`), so only it
    stays a bidict; the others paid for a second dict and bidict's checks on every enter and leave,
    and each socket's room of its own was a bidict of two one-entry dicts."""

    __slots__ = ()

    @property
    def _fwdm(self) -> dict[str, str]:
        # the bidict's forward dict, which the library's get_participants (and `participants`) read
        return self


class PendingSids(dict[str, None]):
    """The sids of a namespace that are connecting or disconnecting, with the list methods the
    library calls on them, in O(1).

    The library keeps them in a list and asks `sid in` it on every `is_connected`: when 10,000
    clients dropped at once, each disconnect handler that awaited (a session save) kept its sid in
    the list meanwhile, and the scans were a third of the teardown's samples (bench/profile.py
    --workload disconnect, docs/performance.md)."""

    def append(self, sid: str) -> None:
        self[sid] = None

    def remove(self, sid: str) -> None:
        del self[sid]


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """Also keeps the rooms of each session, so that a disconnect leaves only its own rooms.

    The library's `basic_disconnect` looks for the sid in every room of the namespace, and every
    connected sid has a room of its own: a disconnect cost O(connections), and 10,000 clients
    dropping at once kept one core busy for 27 s (bench idle N = 10000, docs/performance.md).
    """

    def __init__(self) -> None:
        super().__init__()
        # (namespace, sid) -> the rooms it is in, the connected-sids room (None) included; a list,
        # not a set: a session is in a few rooms, and a set of two took 216 bytes against 88
        self._rooms_of: dict[tuple[str, str], list[str | None]] = {}

    async def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        pending = self.pending_connect.setdefault(namespace, PendingSids())
        sid: str | None = await super().pre_connect(eio_sid, namespace)
        if not pending:  # already connected: nothing added, and the library keeps no empty one
            del self.pending_connect[namespace]
        return sid

    def pre_disconnect(self, sid: str, namespace: str) -> Any:
        self.pending_disconnect.setdefault(namespace, PendingSids())
        return super().pre_disconnect(sid, namespace)

    def basic_enter_room(
        self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None
    ) -> None:
        if room is None:
            super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        else:
            # the library's checks and steps, with a Room for the bidict
            if eio_sid is None and namespace not in self.rooms:
                raise ValueError("sid is not connected to requested namespace")
            if sid != room and self.is_sid_room(namespace, room):
                raise ValueError("cannot enter a sid room")
            by_name = self.rooms.setdefault(namespace, {})
            members = by_name.get(room)
            if members is None:
                members = by_name[room] = Room()
            members[sid] = by_name[None][sid] if eio_sid is None else eio_sid
        rooms = self._rooms_of.setdefault((namespace, sid), [])
        if room not in rooms:
            rooms.append(room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None and room in rooms:
            rooms.remove(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        # The library's, with the sid's own rooms from the index instead of a search of all.
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | list[str] | None = None,
        skip_sid: str | list[str] | None = None,
        callback: Any = None,
        to: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs
            )
            return
        if namespace not in self.rooms:
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        pkt = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args])
        await self.emit_encoded(pkt.encode(), namespace, to or room, skip_sid)

    async def emit_encoded(
        self,
        encoded: str | list[Any],
        namespace: str,
        room: str | list[str] | None,
        skip_sid: str | list[str] | None = None,
    ) -> None:
        """Sends an already encoded Socket.IO packet (a list when it has binary attachments)."""
        batch = self.batch()
        batch.add(encoded, namespace, room, skip_sid)
        await batch.send()

    def batch(self) -> FanoutBatch:
        """Broadcasts to send together (see `FanoutBatch`)."""
        return FanoutBatch(self)

    def participants(
        self, namespace: str, room: str | list[str] | tuple[str, ...] | None, skip: Iterable[str | None] = ()
    ) -> dict[str, str]:
        """sid -> Engine.IO sid of every socket in `room` (or any of the rooms), but those in `skip`.

        The library's `get_participants` without its generator: it reads the same bidict's forward
        dict (`_fwdm`), which a dict copies and merges at C speed."""
        ns = self.rooms.get(namespace)
        if not ns:
            return {}
        found: dict[str, str] | None = None
        for name in room if isinstance(room, list | tuple) else (room,):
            members = ns.get(name)
            if not members:
                continue
            if found is None:
                found = members._fwdm.copy()
            else:
                found.update(members._fwdm)
        if found is None:
            return {}
        for sid in skip:
            if sid is not None:
                found.pop(sid, None)
        return found


def _frame_of_part(part: str | bytes) -> bytes:
    """The WebSocket frame of an Engine.IO MESSAGE with `part` as its data, as `frame_of` builds it
    from the packet (`Packet.encode`: "4" and the text, or the bytes as they are)."""
    if isinstance(part, str):
        return text_frame(f"{eio_packet.MESSAGE}{part}")
    return binary_frame(part)


@dataclass(slots=True)
class _Run:
    """Consecutive broadcasts of one batch that reach the same sockets."""

    participants: dict[str, str]
    parts: list[str]
    # the (rooms, skip) the broadcasts named: another with one of these reaches the same sockets
    keys: list[tuple[Any, ...]]


class FanoutBatch:
    """Broadcasts sent together, in order: each recipient gets the frames of a run of consecutive
    broadcasts that reach the same sockets in one write, not one write per broadcast.

    A group-committed log batch (gateway/recovery.py) holds dozens of broadcasts at saturation,
    mostly of one stream to one audience: product bench N = 100, 89 of 200 batches held 64 or more
    log entries (docs/performance.md). The order holds per socket: the open runs of a batch never
    share a socket (one that would is written first), and each is written in the order it was
    added to. Runs of different namespaces are separate, so a client with sockets on two
    namespaces of one connection may get one namespace's part of a batch before the other's; the
    batch became visible at once (one commit), and Socket.IO orders events per socket only.
    Nothing is written until `send`, which must follow without an await in between, as membership
    is read when a broadcast is added.
    """

    __slots__ = ("_manager", "_others", "_runs")

    def __init__(self, manager: FanoutManager) -> None:
        self._manager = manager
        self._runs: dict[str, list[_Run]] = {}
        # Engine.IO sessions of a socket class of the library's own, with what they are owed
        self._others: list[tuple[str, list[Any]]] = []

    def add(
        self,
        encoded: str | list[Any],
        namespace: str,
        room: str | list[str] | tuple[str, ...] | None,
        skip_sid: str | list[str] | tuple[str, ...] | None = None,
    ) -> None:
        parts = encoded if isinstance(encoded, list) else [encoded]
        skip = tuple(skip_sid) if isinstance(skip_sid, list | tuple) else (skip_sid,)
        key = (tuple(room) if isinstance(room, list) else room, skip)
        runs = self._runs.setdefault(namespace, [])
        for run in runs:
            if key in run.keys:
                run.parts.extend(parts)
                return
        participants = self._manager.participants(namespace, room, skip)
        if not participants:
            return
        for run in runs:
            if run.participants == participants:
                run.keys.append(key)
                run.parts.extend(parts)
                return
        for run in [r for r in runs if not r.participants.keys().isdisjoint(participants)]:
            runs.remove(run)
            self._write(run)
        runs.append(_Run(participants, list(parts), [key]))

    async def send(self) -> None:
        for runs in self._runs.values():
            for run in runs:
                self._write(run)
        self._runs.clear()
        others, self._others = self._others, []
        for eio_sid, packets in others:  # a socket class of the library's own: its awaited send
            for pkt in packets:
                await self._manager.server._send_eio_packet(eio_sid, pkt)

    def _write(self, run: _Run) -> None:
        # Engine.IO packets only for recipients that queue them (polling, a socket class of the
        # library's): on WebSocket the frames are built from the text itself.
        packets: list[Any] | None = None
        frame: bytes | None = None
        sockets = self._manager.server.eio.sockets
        for eio_sid in run.participants.values():
            socket = sockets.get(eio_sid)
            writer = socket.writer if isinstance(socket, DirectWebSocketSocket) else None
            if writer is None:
                if socket is None:
                    continue
                if packets is None:
                    packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in run.parts]
                if isinstance(socket, DirectWebSocketSocket):  # polling, or not yet on its WebSocket
                    for pkt in packets:
                        socket.send_now(pkt)
                else:
                    self._others.append((eio_sid, packets))
                continue
            # `send_now`'s WebSocket branch, inline: three calls fewer per recipient (send_now,
            # write_frame, frame_of) took 9-15 % off the CPU per delivery at N = 1000 / 5000
            # (bench broadcast, docs/performance.md); the run's frames go as one write.
            if frame is None:
                frame = b"".join([_frame_of_part(part) for part in run.parts])
            if writer.write_frame(frame) > socket.outbound_limit:
                socket.cut_off()
