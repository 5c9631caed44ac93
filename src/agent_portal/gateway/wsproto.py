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

Once the handshake is done the connection parses the client's frames itself (`data_received`):
a complete, unfragmented text or binary frame is unmasked and delivered without websockets'
generator parser, and without uvicorn pausing and resuming the socket's reading around every
message (two `epoll_ctl` calls each). Every other frame (control, fragmented, unmasked,
oversized, reserved bits) is handed, whole, to websockets, which stays the judge of the protocol.
A session may take its text messages straight from `data_received` (`receive_with`), which
spares each message the trip through the ASGI receive queue and the app's read loop.

`PortalHttpProtocol` (uvicorn's `http=`) is uvicorn's httptools protocol, which lets go of a
connection once it has handed it to the WebSocket protocol (see the class). It also hands over
a plain upgrade request without having websockets parse it a second time (`plain_upgrade`).

Server-to-client frames are unmasked, so one frame is valid on every connection, provided no
per-connection extension rewrites it: permessage-deflate is therefore not negotiated (Node's
socket.io 4 does not enable it either). The Engine.IO session finds this object in the ASGI
scope under `extensions[FRAME_WRITER]`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import socket
import struct
import weakref
from asyncio.transports import BaseTransport
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.speedups import apply_mask
from websockets.utils import accept_key

FRAME_WRITER = "agent_portal.frame_writer"

_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_OP_TEXT = 0x1
_OP_BINARY = 0x2

# Takes a client's text message at once; False leaves it (and what follows) to the app's read loop.
Receiver = Callable[[str], bool]


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
    the ASGI app's receive loop, or a parked session's (`on_put`, see `PortalWebSocketProtocol.park`)."""

    __slots__ = ("_items", "_waiter", "on_put")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.on_put: Callable[[], None] | None = None  # called once, on the next put

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        on_put = self.on_put
        if on_put is not None:
            self.on_put = None
            on_put()

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

    _conn: ServerProtocol | None

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
        self._inbox = _Inbox()
        self.queue = self._inbox  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]
        self._cork = _cork_of(self.loop)
        self._corked: list[bytes] = []
        self._corked_size = 0
        # The transport's unsent bytes when this iteration's first frame was corked
        self._backlog = 0
        # Unparsed bytes of the next frame while we parse frames ourselves; None while websockets
        # parses them (the handshake, and for good once it has taken over).
        self._rx: bytearray | None = None
        self.receiver: Receiver | None = None
        # The session has parked (see `park`): the app's return no longer closes the connection.
        self.detached = False
        # Sec-WebSocket-Accept of a request taken over from the HTTP protocol (`take_over`).
        self._accept_key: str | None = None
        self._frames_parser: Any = None  # the frames' parser `take_over` put in place
        self._max_size: int | None = config.ws_max_size

    @property
    def conn(self) -> ServerProtocol:
        """websockets' protocol object, rebuilt when it was let go (see `_parse_frames_ourselves`)."""
        conn = self._conn
        if conn is None:
            conn = self._conn = _frames_only_protocol(self._max_size)
        return conn

    @conn.setter
    def conn(self, value: ServerProtocol) -> None:  # uvicorn's __init__ sets it
        self._conn = value

    async def run_asgi(self) -> None:
        # uvicorn's, except at the end: a parked session's app returns with the connection open.
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if self.close_timer is None and not self.detached:
            self.transport.close()

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        _no_delay(transport)

    def take_over(self, http: HttpToolsProtocol, accept: str) -> None:
        """`connection_made` and the handshake's `handle_connect`, from what uvicorn's HTTP
        protocol has parsed: the request `plain_upgrade` passed, whose `Sec-WebSocket-Accept` is
        `accept`. Where uvicorn writes the request out again for websockets to parse, and reads
        the addresses of the socket again (two system calls), this builds the same scope from
        the HTTP protocol's; the answer to the handshake is written by `_accept`."""
        transport = http.transport
        self.connections.add(self)
        self.transport = transport
        self.server, self.client = http.server, http.client
        self.scheme = "wss" if http.scheme == "https" else "ws"
        if self.logger.level <= TRACE_LOG_LEVEL:
            prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", prefix)
        _no_delay(transport)
        self._accept_key = accept
        self.request = None  # type: ignore[assignment]
        self.handshake_initiated = True
        # websockets' parser is waiting for the request line; it will be given frames only.
        conn = self.conn
        old, conn.parser = conn.parser, Protocol.parse(conn)
        next(conn.parser)
        old.close()
        self._frames_parser = conn.parser
        raw_path, _, query_string = http.url.partition(b"?")
        extensions: Any = {"websocket.http.response": {}, FRAME_WRITER: self}
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path.decode("ascii")),
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": query_string,
            "headers": http.headers,
            "subprotocols": [],
            "state": http.scope["state"],  # the HTTP scope's copy, which is dropped
            "extensions": extensions,
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the app task is created but has not run yet
            scope["extensions"][FRAME_WRITER] = self

    async def send(self, message: ASGISendEvent) -> None:
        self.flush()  # what was corked goes first (a close above all)
        if (
            message["type"] == "websocket.accept"
            and not self.handshake_complete
            and self.initial_response is None
        ):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._accept(message)
        else:
            await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (their headers) are not needed once it is sent;
            # the app keeps what it needs from the scope. ~3 KB per idle connection.
            self.request = self.response = None  # type: ignore[assignment]
            self._parse_frames_ourselves()

    def _accept(self, message: Any) -> None:
        # uvicorn's `websocket.accept`, with the 101 response corked: the Engine.IO OPEN packet the
        # app writes next goes out in the same write, one syscall (and one wake-up of the client)
        # fewer per connection; and its access log line is only formatted when it is logged.
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s - "WebSocket %s" [accepted]',
                get_client_addr(self.scope),
                get_path_with_query_string(self.scope),
            )
        extra = self.default_headers + list(message.get("headers", []))
        subprotocol = message.get("subprotocol")
        if self._accept_key is not None:
            if self.transport.is_closing():
                return
            # websockets' 101 (its `accept`: Upgrade, Connection, Sec-WebSocket-Accept) with
            # uvicorn's headers and the app's, as below, written without a Response object.
            lines = [_SWITCHING, self._accept_key.encode(), b"\r\n"]
            for name, value in extra:
                lines += (name.lower(), b": ", value, b"\r\n")
            if subprotocol:
                lines += (b"Sec-WebSocket-Protocol: ", subprotocol.encode(), b"\r\n")
            lines.append(b"\r\n")
            response = b"".join(lines)
            self.handshake_complete = True
            self.conn.state = State.OPEN  # as websockets' `send_response` of a 101
            self.conn.logger.info("connection open")
        else:
            headers = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in extra]
            if subprotocol:
                headers.append(("Sec-WebSocket-Protocol", subprotocol))
            del self.response.headers["Date"]
            self.response.headers.update(headers)
            if self.transport.is_closing():
                return
            self.handshake_complete = True
            self.conn.send_response(self.response)
            response = b"".join(self.conn.data_to_send())
        if not self._corked:
            self._start_cork()
        self._corked.append(response)
        self._corked_size += len(response)
        self.start_keepalive()

    # --- receiving --------------------------------------------------------------------------------

    def _parse_frames_ourselves(self) -> None:
        # Only from a frame boundary: websockets' parser holds nothing and waits for a new frame
        # (its innermost generator is StreamReader.at_eof). A client that sent frames before the
        # handshake's answer may have left it mid-frame; that connection stays with websockets.
        conn = self.conn
        if conn.state is not State.OPEN or conn.reader.buffer or conn.current_size is not None:
            return
        generator: Any = conn.parser  # a generator; typed as its Generator protocol only
        while generator.gi_yieldfrom is not None:
            generator = generator.gi_yieldfrom
        if generator.gi_code.co_name != "at_eof":
            return
        self._rx = bytearray()
        taken_over = conn.parser is self._frames_parser  # `take_over`: the frames' parser already
        self._frames_parser = None
        if not conn.events and not conn.writes:
            # websockets' object holds nothing but its OPEN state here: let go of it, and `conn`
            # builds the same one (`_frames_only_protocol`) if a frame we do not parse ourselves,
            # or a close, ever needs it. It was ~1.2 KB and nine objects for the collector per
            # idle connection (docs/performance.md, session 17).
            conn.parser.close()
            self._conn = None
            return
        if taken_over:
            return
        # websockets' server parser is the handshake's then the frames' (`Protocol.parse`), and
        # keeps the parsed handshake request in its frame for the connection's life: 2.2 KB per
        # connection (docs/performance.md, memory). At this boundary the frames' parser alone
        # takes over, from the same state; the old one is closed.
        old, conn.parser = conn.parser, Protocol.parse(conn)
        next(conn.parser)
        old.close()

    @property
    def parses_frames(self) -> bool:
        return self._rx is not None

    def receive_with(self, receiver: Receiver | None) -> bool:
        """Hands the following text messages to `receiver` as they arrive, until it returns False
        (see `_deliver`). Refused while messages wait in the app's queue, which go first."""
        if receiver is not None and not self.queue.empty():
            return False
        self.receiver = receiver
        return True

    def park(self, receiver: Receiver, wake: Callable[[], None]) -> bool:
        """`receive_with(receiver)`, and the app may return without closing the connection.

        An idle session otherwise holds its whole ASGI call chain, suspended in `receive()`:
        about 20 coroutines and their frames, ~8 KB per connection (docs/performance.md,
        memory). A parked session lets that chain end; whatever then comes for the app's
        queue (a message `receiver` declines, the disconnect) calls `wake` once, and the
        session reads its queue again with `receive()` until it can park again."""
        if not self.receive_with(receiver):
            return False
        self.detached = True
        self._inbox.on_put = wake
        return True

    def data_received(self, data: bytes) -> None:
        rx = self._rx
        if rx is None:
            super().data_received(data)
            return
        buf: bytes | bytearray
        if rx:
            rx += data
            buf = rx
        else:
            buf = data
        end = len(buf)
        pos = 0
        limit = self._max_size
        # RFC 6455 §5.2; a client's frame is masked, so its header is at least 6 bytes.
        while end - pos >= 6:
            first = buf[pos]
            length = buf[pos + 1] & 0x7F
            start = pos + 6
            if length == 126:
                if end - pos < 8:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 8
            elif length == 127:
                if end - pos < 14:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 14
            if not buf[pos + 1] & 0x80 or (limit is not None and length > limit):
                # unmasked or too large: websockets refuses it with the right close code
                self._give_up_parsing(buf[pos:])
                return
            stop = start + length
            if stop > end:
                break
            opcode = first & 0x0F
            if (
                first & 0xF0 == 0x80
                and opcode in (_OP_TEXT, _OP_BINARY)
                and (self._conn is None or self._conn.current_size is None)
            ):
                self._deliver(opcode == _OP_TEXT, apply_mask(buf[start:stop], buf[start - 4 : start]))
                if self._rx is None or self.transport.is_closing():
                    return  # refused (invalid UTF-8) or closed by what the message did
            else:
                super().data_received(bytes(buf[pos:stop]))
                if self.conn.parser_exc is not None or self.conn.close_rcvd is not None:
                    # failed (uvicorn has closed) or closing: websockets discards the rest
                    self._give_up_parsing(b"" if self.conn.parser_exc else buf[stop:])
                    return
            pos = stop
        if buf is rx:
            del rx[:pos]
        elif pos < end:
            rx += buf[pos:]

    def _give_up_parsing(self, rest: bytes | bytearray) -> None:
        self._rx = None
        self.receiver = None
        if rest:
            super().data_received(bytes(rest))

    def send_receive_event_to_app(self) -> None:
        # uvicorn's, for the messages websockets parsed (fragmented ones, or before we parse).
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        self._deliver(self.curr_msg_data_type == "text", data)

    def _deliver(self, text: bool, data: bytes) -> None:
        if self.close_sent:
            # As uvicorn: past `websocket.close` messages are dropped; reading goes on until the
            # peer's close reply arrives.
            return
        if text:
            try:
                decoded = data.decode()
            except UnicodeDecodeError:
                self.logger.warning("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self._rx = None
                self.receiver = None
                self.handle_parser_exception()
                return
            receiver = self.receiver
            if receiver is not None:
                if receiver(decoded):
                    return
                self.receiver = None  # ordering: from here on the read loop takes everything
            self.queue.put_nowait({"type": "websocket.receive", "text": decoded})
        else:
            self.receiver = None
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

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
        # Whether the connection is open, and what its transport holds, are asked with the
        # iteration's first frame only: neither changes until the flush writes (the flush drops the
        # frames of a connection closed meanwhile). A batch of log entries delivers many frames
        # to each socket in one iteration (bench product N = 100, docs/performance.md).
        if not self._corked:
            if not self.open:
                return -1
            self._start_cork()
        self._corked.append(frame)
        self._corked_size += len(frame)
        return self._corked_size + self._backlog

    def _start_cork(self) -> None:
        self._cork.add(self)
        self._backlog = self.transport.get_write_buffer_size()

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
        kind: Any = self.ws_protocol_class
        accept = None
        if isinstance(kind, type) and issubclass(kind, PortalWebSocketProtocol):
            accept = plain_upgrade(self.scope, self.url, self.headers)
        if accept is None:
            # uvicorn writes the request out again for websockets to parse, and judge
            super().handle_websocket_upgrade()
        else:
            self.connections.discard(self)
            protocol = kind(config=self.config, server_state=self.server_state, app_state=self.app_state)
            protocol.take_over(self, accept)
            self.transport.set_protocol(protocol)
        self.parser = None  # type: ignore[assignment]  # breaks the cycle; unused from here on
        self.flow = None  # type: ignore[assignment]


_SWITCHING = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
)
# RFC 9110 §5.6.2, as websockets' header parsers read them
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_MAX_HEADERS = 128  # websockets' MAX_NUM_HEADERS and MAX_LINE_LENGTH
_HANDSHAKE_HEADERS = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"upgrade",
        b"connection",
        b"origin",
        b"sec-websocket-protocol",
        b"transfer-encoding",
        b"content-length",
    }
)
_MAX_LINE = 8192


def plain_upgrade(scope: Any, target: bytes, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The `Sec-WebSocket-Accept` of an upgrade request that websockets would accept, with
    nothing to negotiate; None for any other request, which websockets is then given to judge.

    Taking such a request from httptools' parse saves websockets' parse of the same bytes, the
    serialization uvicorn feeds it and the handshake's objects: ~10 % of a connection's set-up
    (bench idle, docs/performance.md). What passes here is a subset of what websockets accepts
    (`ServerProtocol.process_request`, `Request.parse`), and gets the same 101: GET over
    HTTP/1.1, an ASCII target, no body, exactly one Upgrade (websocket), Sec-WebSocket-Key (16
    bytes in base64) and Sec-WebSocket-Version (13), a Connection with the `upgrade` option, at
    most one Origin, and no Sec-WebSocket-Protocol (no subprotocols are served). Extensions
    offered are ignored, as websockets does when none is enabled (see the module doc)."""
    if scope.get("method") != "GET" or scope.get("http_version", "1.1") != "1.1" or not target.isascii():
        return None
    if len(headers) > _MAX_HEADERS or len(target) > _MAX_LINE:
        return None
    key = version = upgrade = None
    connection = False
    origins = 0
    for name, value in headers:
        if len(name) + len(value) + 4 > _MAX_LINE:
            return None
        if name not in _HANDSHAKE_HEADERS:
            continue  # most of a browser's: one lookup instead of the chain below
        if name == b"sec-websocket-key":
            if key is not None:
                return None
            key = value
        elif name == b"sec-websocket-version":
            if version is not None:
                return None
            version = value
        elif name == b"upgrade":
            if upgrade is not None:
                return None
            upgrade = value
        elif name == b"connection":
            options = [option.strip(b" \t") for option in value.split(b",")]
            if not all(_TOKEN.fullmatch(option) for option in options):
                return None
            connection = connection or any(option.lower() == b"upgrade" for option in options)
        elif name == b"origin":
            origins += 1
        elif name in (b"sec-websocket-protocol", b"transfer-encoding") or (
            name == b"content-length" and value != b"0"
        ):
            return None
    if not connection or origins > 1 or upgrade is None or upgrade.lower() != b"websocket":
        return None
    if version != b"13" or key is None:
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return accept_key(key.decode("ascii"))


def _frames_only_protocol(max_size: int | None) -> ServerProtocol:
    """websockets' server protocol of an open connection, at a frame boundary, as uvicorn builds it
    (no extensions: see `PortalWebSocketProtocol.__init__`) once its handshake is done; its parser
    reads frames only (`Protocol.parse`; the server's own parses the handshake first)."""
    conn = ServerProtocol(max_size=max_size, logger=logging.getLogger("uvicorn.error"))
    conn.state = State.OPEN
    handshake_parser, conn.parser = conn.parser, Protocol.parse(conn)
    next(conn.parser)
    handshake_parser.close()
    return conn


def _no_delay(transport: BaseTransport) -> None:
    # An event followed by its ack is two writes; with Nagle on, the second waits for the
    # client's delayed ACK: ~44 ms per reply (measured with python-socketio's client). asyncio
    # sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and a listening socket made
    # with socket.socket() has proto 0 (so do the connections it accepts); uvloop sets it always,
    # so its TCP transports are spared the two calls (~2 % of a connection's set-up, profile).
    if type(transport).__module__ == "uvloop.loop" and type(transport).__name__ == "TCPTransport":
        return
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
