"""Broadcast fan-out: one encode and one WebSocket frame per broadcast, no task per recipient.

python-socketio's `AsyncManager.emit` encodes once but then creates one task per recipient and
waits for all of them: with the writer loops' tasks, half of stock python-socketio's broadcast
time (docs/performance.md, profile). `FanoutManager` replaces it through the documented seam,
`AsyncServer(client_manager=...)`: it hands the same Engine.IO packet (so the same cached frame,
see `wstransport.frame_of`) to every recipient's `send_now`, which writes to the WebSocket at once
or queues for a polling session, without yielding; a recipient's packets therefore keep the order
of the emits. Emits with a callback (a per-recipient ack id) stay with the library.
"""

from __future__ import annotations

import json
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from agent_portal.gateway.wstransport import DirectWebSocketSocket


def encode_event(namespace: str, args: str) -> str:
    """A Socket.IO EVENT packet from the JSON of its arguments, as `socketio.packet.Packet.encode`
    writes it: type, namespace unless "/", then the array (no ack id, no binary attachments)."""
    prefix = str(sio_packet.EVENT) if namespace == "/" else f"{sio_packet.EVENT}{namespace},"
    return prefix + args


def with_last_argument(args: str, value: str) -> str:
    """The JSON array `args` with the string `value` appended (a recovery offset)."""
    return f"{args[:-1]},{json.dumps(value)}]"


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
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
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        sockets = self.server.eio.sockets
        others: list[str] = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            socket = sockets.get(eio_sid)
            if isinstance(socket, DirectWebSocketSocket):
                for pkt in packets:
                    socket.send_now(pkt)
            elif socket is not None:
                others.append(eio_sid)
        for eio_sid in others:  # a socket class of the library's own: its awaited send
            for pkt in packets:
                await self.server._send_eio_packet(eio_sid, pkt)
