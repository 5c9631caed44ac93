"""uvicorn's WebSocket protocol with a synchronous, pre-framed write path for Engine.IO sessions.

Replaces uvicorn's `websockets-sansio` protocol (pass `ws=PortalWebSocketProtocol` to uvicorn).
Through ASGI every outgoing message is one `await send({...})` that frames the text again for
each recipient: 24 % of stock python-socketio's broadcast time (docs/performance.md, profile).
This class keeps uvicorn's handshake and close handling and adds `write_frame`: a broadcast
frames its message once (`text_frame`) and hands the same bytes to every socket.

Frames are corked: `write_frame` collects them per connection, and one callback per event-loop
iteration writes each connection's frames with one `write`. A write on a loopback or LAN socket
makes the kernel wake the reading peer (`sock_def_readable`); written one by one, as they were
produced, these wake-ups took 17.6 % of the server's CPU in the ack workload, against 3.9 % when
the writes of an iteration go out together (`perf`, docs/performance.md). Corking also makes an
event and its ack, or several broadcasts in one iteration, one system call per connection. Every
other write of the connection (uvicorn's `send`, the closing handshake, shutdown) flushes first,
so no frame is ever written behind a CLOSE.

`PortalHttpProtocol` (uvicorn's `http=`) is uvicorn's httptools protocol, which lets go of a
connection once it has handed it to the WebSocket protocol (see the class).

Server-to-client frames are unmasked, so one frame is valid on every connection, provided no
per-connection extension rewrites it: permessage-deflate is therefore not negotiated (Node's
socket.io 4 does not enable it either). The Engine.IO session finds this object in the ASGI
scope under `extensions[FRAME_WRITER]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import weakref
from asyncio.transports import BaseTransport
from collections import deque
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame
from websockets.http11 import Request

FRAME_WRITER = "agent_portal.frame_writer"

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82


def _frame(first: int, payload: bytes) -> bytes:
    # RFC 6455 §5.2, server to client: FIN + opcode, unmasked length, payload.
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def text_frame(text: str) -> bytes:
    return _frame(_FIN_TEXT, text.encode())


def binary_frame(data: bytes) -> bytes:
    return _frame(_FIN_BINARY, data)


class _Inbox:
    """What uvicorn's protocol uses of its `asyncio.Queue` (put_nowait, get, empty), without the
    queue's other three deques and its Event: ~2.5 KB less per idle connection. One reader only:
    the ASGI app's receive loop."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """uvicorn's `writable` (set, clear, wait) without an `asyncio.Event`'s waiter deque."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def set(self) -> None:
        self._set = True
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._waiters = None

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters = [*(self._waiters or ()), waiter]
        await waiter


class _Cork:
    """The connections with corked frames on one event loop, flushed by one callback."""

    __slots__ = ("_loop", "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: list[PortalWebSocketProtocol] = []

    def add(self, protocol: PortalWebSocketProtocol) -> None:
        if not self._waiting:
            self._loop.call_soon(self._flush)
        self._waiting.append(protocol)

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        for protocol in waiting:
            protocol.flush()


_corks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Cork] = weakref.WeakKeyDictionary()


def _cork_of(loop: asyncio.AbstractEventLoop) -> _Cork:
    cork = _corks.get(loop)
    if cork is None:
        cork = _corks[loop] = _Cork(loop)
    return cork


class PortalWebSocketProtocol(WebSocketsSansIOProtocol):
    """`WebSocketsSansIOProtocol` plus `write_frame` / `close_now` for the Engine.IO transport."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # No permessage-deflate: a compressed frame differs per connection (see the module doc).
        # Turned off in the config itself, so uvicorn builds its ServerProtocol without the
        # extension and this class need not build a second one.
        config.ws_per_message_deflate = False
        super().__init__(config, server_state, app_state, _loop)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self._cork = _cork_of(self.loop)
        self._corked: list[bytes] = []
        self._corked_size = 0

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        # An event followed by its ack is two writes; with Nagle on, the second waits for the
        # client's delayed ACK: ~44 ms per reply (measured with python-socketio's client). asyncio
        # sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and a listening socket made
        # with socket.socket() has proto 0 (so do the connections it accepts); uvloop sets it always.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the app task is created but has not run yet
            scope["extensions"][FRAME_WRITER] = self

    async def send(self, message: ASGISendEvent) -> None:
        self.flush()  # what was corked goes first (a close above all)
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (their headers) are not needed once it is sent;
            # the app keeps what it needs from the scope. ~3 KB per idle connection.
            self.request = self.response = None  # type: ignore[assignment]

    @property
    def open(self) -> bool:
        return (
            self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and self.initial_response is None
            and not self.transport.is_closing()
        )

    def write_frame(self, frame: bytes) -> int:
        """Writes one complete frame by the end of this event-loop iteration (corked, see the
        module doc); returns the bytes not yet sent, or -1 if the connection is closed."""
        if not self.open:
            return -1
        if not self._corked:
            self._cork.add(self)
        self._corked.append(frame)
        self._corked_size += len(frame)
        return self._corked_size + self.transport.get_write_buffer_size()

    def flush(self) -> None:
        """Writes the corked frames now (dropped if the connection closed meanwhile)."""
        corked = self._corked
        if not corked:
            return
        self._corked = []
        self._corked_size = 0
        if self.open:
            self.transport.write(corked[0] if len(corked) == 1 else b"".join(corked))

    def shutdown(self) -> None:
        self.flush()
        super().shutdown()

    def handle_close(self, event: Frame) -> None:
        self.flush()
        super().handle_close(event)

    def close_now(self, code: int = 1000, reason: str = "") -> None:
        """Starts the closing handshake without waiting for the write buffer (uvicorn's
        `websocket.close` waits for it to drain, which a stalled client never lets happen)."""
        if not self.open:
            return
        self.flush()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    def abort(self) -> None:
        """Drops the connection and whatever is buffered for it (a slow consumer)."""
        self._corked = []
        self._corked_size = 0
        self.transport.abort()


class PortalHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, freed by reference counting once a WebSocket upgrade is done.

    After the upgrade this object is never called again, but it and its parser keep each other
    alive (the parser holds the protocol as its callbacks), with its flow control and Event:
    about 20 objects per WebSocket connection, left to the cyclic collector. At 10,000
    connections those were ~1,700 objects per young collection (~20 ms each), and memory held
    until a collection got round to them (bench idle workload, docs/performance.md).
    """

    def handle_websocket_upgrade(self) -> None:
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]  # breaks the cycle; unused from here on
        self.flow = None  # type: ignore[assignment]
