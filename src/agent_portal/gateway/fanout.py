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
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from agent_portal.gateway.wstransport import DirectWebSocketSocket, frame_of


def encode_event(namespace: str, args: str) -> str:
    """A Socket.IO EVENT packet from the JSON of its arguments, as `socketio.packet.Packet.encode`
    writes it: type, namespace unless "/", then the array (no ack id, no binary attachments)."""
    prefix = str(sio_packet.EVENT) if namespace == "/" else f"{sio_packet.EVENT}{namespace},"
    return prefix + args


def with_last_argument(args: str, value: str) -> str:
    """The JSON array `args` with the string `value` appended (a recovery offset)."""
    return f"{args[:-1]},{json.dumps(value)}]"


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

    def basic_enter_room(
        self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
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
        parts = encoded if isinstance(encoded, list) else [encoded]
        packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        frames: list[bytes] | None = None
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        sockets = self.server.eio.sockets
        others: list[str] = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = sockets.get(eio_sid)
            if not isinstance(socket, DirectWebSocketSocket):
                if socket is not None:
                    others.append(eio_sid)
                continue
            writer = socket.writer
            if writer is None:  # polling, or not yet switched to its WebSocket
                for pkt in packets:
                    socket.send_now(pkt)
                continue
            # `send_now`'s WebSocket branch, inline: three calls fewer per recipient (send_now,
            # write_frame, frame_of) took 9-15 % off the CPU per delivery at N = 1000 / 5000
            # (bench broadcast, docs/performance.md)
            if frames is None:
                frames = [frame_of(pkt) for pkt in packets]
            for frame in frames:
                if writer.write_frame(frame) > socket.outbound_limit:
                    socket.cut_off()
        for eio_sid in others:  # a socket class of the library's own: its awaited send
            for pkt in packets:
                await self.server._send_eio_packet(eio_sid, pkt)
