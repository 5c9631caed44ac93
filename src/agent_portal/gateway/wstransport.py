"""The Engine.IO WebSocket transport without a writer task: packets are written when they are sent.

python-engineio runs one writer task per WebSocket session that waits on the session's queue
(`asyncio.wait_for` around every `queue.get()`, another task per packet) and one read loop that
wraps every receive in a task and a `wait_for`. Together with one task per recipient in the
manager that was half of stock python-socketio's broadcast time (docs/performance.md, profile).
When uvicorn runs our `PortalWebSocketProtocol` (the scope offers a `FRAME_WRITER`), a session
that is on the WebSocket writes every packet straight to its connection, in call order, from the
caller's own stack: ordering per socket holds because nothing is deferred. Sessions on polling,
and sessions whose connection is not ours, keep the library's queue.

A session on its WebSocket no longer needs most of the request it came with, but python-socketio
keeps that request's environ for the session's whole life, and the ASGI app keeps the upgrade
request's: every header, twice (environ and ASGI scope). At the switch both keep only what a later
namespace connect reads (`KEPT_HEADERS`): 25.7 -> 21.0 KB per idle connection at N = 10000.

Reading goes the same way when the connection is ours: text messages are taken from the
protocol's `data_received` (`_receive_now`) and a Socket.IO event is dispatched there, through
the server's `message_now`, instead of through the ASGI receive queue and this session's read
loop. Whatever `message_now` declines (any other packet, anything invalid) goes to the read loop,
and so does everything after it until the loop has caught up, so a socket's packets are still
handled in the order they arrived. While nothing waits for it, the read loop is not kept at all:
the session parks (`PortalWebSocketProtocol.park`), the ASGI request that carried the WebSocket
returns, and the connection starts a new read loop (`_wake`) when something is queued for it.

Each session's outbound buffer is capped (`OUTBOUND_LIMIT`, 1 MiB like Centrifugo's): a consumer
that lets more pile up is disconnected with the reason `SLOW_CONSUMER`, so it neither grows the
server's memory nor delays anyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from engineio import async_socket
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from agent_portal.gateway.wsproto import FRAME_WRITER, binary_frame, text_frame

logger = logging.getLogger(__name__)

OUTBOUND_LIMIT = 1 << 20
# python-engineio's client decodes at most 16 packets per long-polling payload (Payload.max_decode_packets)
POLL_BATCH = 16
SLOW_CONSUMER = "slow consumer: more than 1 MiB waiting to be sent"

_FRAME = "_portal_frame"

# The read loops of parked sessions woken by their connection (held until they end).
_reading: set[asyncio.Task[None]] = set()

# The request headers a session keeps once it is on its WebSocket, for the connect handlers of
# namespaces it joins later: the gateway records the user agent (and the client address, which
# is not a header); Host, Origin and X-Forwarded-For are kept for handlers that check them.
KEPT_HEADERS = frozenset({"user-agent", "host", "origin", "x-forwarded-for"})
_KEPT_ENVIRON_HEADERS = frozenset("HTTP_" + h.upper().replace("-", "_") for h in KEPT_HEADERS)
_KEPT_HEADER_NAMES = frozenset(h.encode() for h in KEPT_HEADERS)


def forget_handshake(environ: dict[str, Any]) -> None:
    """Drops, in place, what only the request itself needed from its environ and ASGI scope."""
    for key in [k for k in environ if k[:5] == "HTTP_" and k not in _KEPT_ENVIRON_HEADERS]:
        del environ[key]
    environ.pop("wsgi.input", None)
    scope = environ.get("asgi.scope")
    if scope is not None and "headers" in scope:
        scope["headers"] = [(n, v) for n, v in scope["headers"] if n.lower() in _KEPT_HEADER_NAMES]


class FrameWriter(Protocol):
    def write_frame(self, frame: bytes) -> int: ...
    def close_now(self, code: int = 1000, reason: str = "") -> None: ...
    def abort(self) -> None: ...
    def receive_with(self, receiver: Callable[[str], bool] | None) -> bool: ...
    def park(self, receiver: Callable[[str], bool], wake: Callable[[], None]) -> bool: ...


def frame_of(pkt: Any) -> bytes:
    """The WebSocket frame of an Engine.IO packet, built once per packet object: a broadcast
    hands the same packet to every recipient."""
    frame: bytes | None = getattr(pkt, _FRAME, None)
    if frame is None:
        encoded = pkt.encode()
        frame = text_frame(encoded) if isinstance(encoded, str) else binary_frame(encoded)
        setattr(pkt, _FRAME, frame)
    return frame


def _size(pkt: Any) -> int:
    data = pkt.data
    return len(data) if isinstance(data, str | bytes) else 64


class DirectWebSocketSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    """`AsyncSocket` whose WebSocket sessions write each packet at once (see the module doc)."""

    outbound_limit = OUTBOUND_LIMIT
    connected: bool
    upgrading: bool
    upgraded: bool
    closed: bool
    last_ping: float | None

    def __init__(self, server: Any, sid: str) -> None:
        # BaseSocket.__init__'s attributes (the library's own check: test_fanout), except its
        # send queue: made on first use (see `queue`), which a session that opens on our
        # WebSocket never comes to. Making it was 4 % of the CPU per connection set up.
        self.server = server
        self.sid = sid
        self._queue: Any = None
        self.last_ping = time.time()
        self.connected = False
        self.upgrading = False
        self.upgraded = False
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}
        self.writer: FrameWriter | None = None  # set while the session is on our WebSocket
        self._offered: FrameWriter | None = None
        self._upgrade_environ: dict[str, Any] | None = None
        self._queued_bytes = 0
        self._close_reason: str | None = None
        self._closing_task: asyncio.Task[None] | None = None
        self._ws: Any = None  # the session's WebSocket (the library's wrapper) while it reads
        self._open_packet: Any = None  # see `send_open`

    # The library gives every session a send queue (an asyncio.Queue: four deques and an Event,
    # ~3 KB) that a session writing straight to its WebSocket no longer uses once it has switched
    # (`_switch_to`): it is made on first use and dropped at the switch.
    @property
    def queue(self) -> Any:
        if self._queue is None:
            self._queue = self.server.create_queue()
        return self._queue

    @queue.setter
    def queue(self, value: Any) -> None:
        self._queue = value

    def _has_queued(self) -> bool:
        return self._queue is not None and not self._queue.empty()

    # --- sending --------------------------------------------------------------------------------

    def send_now(self, pkt: Any) -> None:
        """Sends a packet without yielding: written to the WebSocket, or queued for polling."""
        writer = self.writer
        if writer is not None:
            self.write_frame(writer, frame_of(pkt))
            return
        if self.closed or self._close_reason is not None:
            return
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            # what the library's send() does through check_ping_timeout, without awaiting here
            self._close_soon(self.server.reason.PING_TIMEOUT, abort=False)
            return
        self._queued_bytes += _size(pkt)
        if self._queued_bytes > self.outbound_limit:
            self.cut_off()
            return
        self.queue.put_nowait(pkt)

    async def send_open(self, pkt: Any, environ: dict[str, Any] | None) -> None:
        """Sends the session's OPEN packet; `environ` is the request's when the session opens on
        a WebSocket. If that WebSocket is ours the packet waits for the switch (`_switch_to`)
        rather than in a send queue, which such a session never needs otherwise: the queue's set-up
        was 4 % of the CPU per connection set up."""
        scope = environ.get("asgi.scope") if environ is not None else None
        if scope is not None and FRAME_WRITER in (scope.get("extensions") or ()):
            self._open_packet = pkt
        else:
            await self.send(pkt)

    def write_frame(self, writer: FrameWriter, frame: bytes) -> None:
        if writer.write_frame(frame) > self.outbound_limit:
            self.cut_off()

    async def send(self, pkt: Any) -> None:
        if self.writer is not None:
            self.write_frame(self.writer, frame_of(pkt))
            return
        await super().send(pkt)
        self._queued_bytes += _size(pkt)
        if self._queued_bytes > self.outbound_limit:
            self.cut_off()

    async def poll(self) -> list[Any]:
        # The library's poll, re-implemented to answer with at most POLL_BATCH packets: the
        # python-engineio client refuses a payload of more than 16 and drops the connection,
        # and a burst sent without yielding (see fanout.py) queues more than that at once.
        try:
            first = await asyncio.wait_for(
                self.queue.get(), self.server.ping_interval + self.server.ping_timeout
            )
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            raise eio_exceptions.QueueEmpty() from None
        if first is None:
            return []
        packets = [first]
        while len(packets) < POLL_BATCH and not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        self._queued_bytes = max(0, self._queued_bytes - sum(_size(p) for p in packets))
        return packets

    def cut_off(self) -> None:
        """Closes a slow consumer's session: its outbound buffer passed `outbound_limit`."""
        if self._close_reason is not None:
            return
        logger.warning("closing Engine.IO session %s: %s", self.sid, SLOW_CONSUMER)
        self._close_reason = SLOW_CONSUMER
        if self.writer is not None:
            # Nothing more is written; what is buffered is dropped with the connection. A close
            # frame would sit behind a megabyte the client is not reading.
            self.writer.abort()
        else:
            # polling: the backlog is dropped and the next GET collects the CLOSE packet
            while not self.queue.empty():
                self.queue.get_nowait()
                self.queue.task_done()
            self._queued_bytes = 0
            self._close_soon(SLOW_CONSUMER, abort=False)

    def _close_soon(self, reason: str, abort: bool) -> None:
        if self._closing_task is None:
            self._closing_task = asyncio.ensure_future(self.close(wait=False, abort=abort, reason=reason))

    async def close(self, wait: bool = True, abort: bool = False, reason: str | None = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        if self.writer is not None:
            self.writer.close_now()

    # --- the WebSocket session --------------------------------------------------------------------

    async def _upgrade_websocket(self, environ: dict[str, Any]) -> Any:
        # Private in python-engineio, wrapped: notes whether this connection is ours.
        scope = environ.get("asgi.scope") or {}
        self._offered = (scope.get("extensions") or {}).get(FRAME_WRITER)
        self._upgrade_environ = environ
        return await super()._upgrade_websocket(environ)

    async def _websocket_handler(self, ws: Any) -> None:
        # Private in python-engineio, replaced when the connection is ours (otherwise the library
        # runs). Same upgrade handshake (EIO v4 "Upgrade"), then the read loop below and no writer.
        writer = self._offered
        if writer is None:
            await super()._websocket_handler(ws)
            return
        if self.connected:
            self.upgrading = True  # packets sent meanwhile stay queued
            probe = await self._read(ws)
            if probe is None or probe.packet_type != eio_packet.PING or probe.data != "probe":
                self.upgrading = False
                return
            await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
            await self.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the waiting poll
            upgrade = await self._read(ws)
            if upgrade is None or upgrade.packet_type != eio_packet.UPGRADE:
                self.upgrading = False
                return
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True
        self._switch_to(writer)
        self._ws = ws
        # The first packet is nearly always a namespace CONNECT, which only this loop handles:
        # read it here rather than park and be woken for it at once.
        await self._read_loop(writer, park=False)

    async def _read_loop(self, writer: FrameWriter, park: bool = True) -> None:
        """Handles what the connection queued for the app, until the session can park again
        (`FrameWriter.park`: the call chain that awaited this returns, and the connection calls
        `_wake` when there is more) or the connection is over."""
        ws = self._ws
        while True:
            if park and self.server.message_now is not None and writer.park(self._receive_now, self._wake):
                return
            park = True
            pkt = await self._read(ws)
            if pkt is None:
                break
            try:
                await self.receive(pkt)
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                break
            except Exception:
                logger.exception("error handling a packet from Engine.IO session %s", self.sid)
        writer.receive_with(None)
        writer.close_now()
        self._ws = None
        await self.close(
            wait=False, abort=True, reason=self._close_reason or self.server.reason.TRANSPORT_CLOSE
        )

    def _wake(self) -> None:
        writer = self.writer
        if writer is None or self._ws is None:
            return
        task = asyncio.ensure_future(self._read_loop(writer))
        _reading.add(task)
        task.add_done_callback(_reading.discard)

    def _receive_now(self, text: str) -> bool:
        """An Engine.IO MESSAGE handed over at once by the connection (see the module doc), or
        False to leave it to the read loop. Called from `data_received`: never raises."""
        message_now = self.server.message_now
        if text == "3":
            # PONG: what the library's receive does with it, without waking a parked session
            self.schedule_ping()
            return True
        if message_now is None or self.closed or text[:1] != "4":
            return False
        if len(text) > self.server.max_http_buffer_size:
            return False  # the read loop refuses it and closes the session
        if self.server.logger.isEnabledFor(logging.INFO):
            self.server.logger.info("%s: Received packet MESSAGE data %s", self.sid, text[1:])
        try:
            taken: bool = message_now(self.sid, text[1:])
        except Exception:
            logger.exception("error handling a packet from Engine.IO session %s", self.sid)
            return True
        return taken

    def _switch_to(self, writer: FrameWriter) -> None:
        # What was queued before the switch goes first; no await until `writer` is set, so
        # nothing can be sent in between.
        if self._open_packet is not None:
            self.write_frame(writer, frame_of(self._open_packet))
            self._open_packet = None
        while self._has_queued():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            # a noop only ends a long-polling cycle; None was the library writer's stop sentinel
            if pkt is not None and pkt.packet_type != eio_packet.NOOP:
                self.write_frame(writer, frame_of(pkt))
        self._queued_bytes = 0
        self._queue = None  # not used again (see `queue`): the open packet went through it
        self.writer = writer
        # The session's own environ (python-socketio's, from its first request) and the upgrade
        # request's; one and the same for a session that opened on the WebSocket.
        environ_of = getattr(self.server, "environ_of", None)
        for environ in {
            id(e): e for e in (self._upgrade_environ, environ_of and environ_of(self.sid)) if e
        }.values():
            forget_handshake(environ)
        self._upgrade_environ = None

    @staticmethod
    async def _read(ws: Any) -> Any:
        """The next packet from the client, or None when the connection is over."""
        try:
            data = await ws.wait()
        except (OSError, ValueError):
            return None
        if data is None:
            return None
        try:
            return eio_packet.Packet(encoded_packet=data)
        except ValueError:
            return None
