"""Our seam over python-engineio and python-socketio: protocol conformance and hostile input.

Every override below cites the rule it implements from the Engine.IO v4 and Socket.IO v5
protocol specifications (github.com/socketio/engine.io-protocol, .../socket.io-protocol), whose
official test suites these classes pass (docs/conformance.md). Where a private library method
is overridden, the comment on it says so; those overrides are kept as small as the library allows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import inspect
import json
import logging
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import engineio
import orjson
import socketio
from engineio import exceptions as eio_exceptions
from engineio import json as eio_json
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from socketio import packet as sio_packet

from agent_portal.gateway.fanout import FanoutManager
from agent_portal.gateway.wsproto import text_frame
from agent_portal.gateway.wstransport import DirectWebSocketSocket
from agent_portal.jsontext import COMPACT_ARGS, any_float, compact_dumps

logger = logging.getLogger(__name__)

Environ = dict[str, Any]

# Deepest JSON nesting (arrays and objects, the packet's own array included) a client may send.
MAX_JSON_DEPTH = 32
# A poll that arrives during an upgrade is answered after this long (Node's upgrade check).
UPGRADE_CHECK_INTERVAL = 0.1
# Most binary attachments one Socket.IO packet may announce.
MAX_ATTACHMENTS = 64
# Event names the Node reference refuses from clients (socket.io-parser RESERVED_EVENTS): they
# name the server's own lifecycle, so a client must never be able to trigger their handlers.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

_ENGINE_PACKET_TYPES = frozenset("0123456")
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests deeper than `limit`, decided by a linear scan instead of parsing.

    The C JSON decoder recurses per level, so 5000-deep input must be refused before it is parsed.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_engine_frame(frame: str | bytes) -> None:
    """Raise ValueError unless `frame` is one well-formed Engine.IO v4 packet.

    EIO v4 "Packet encoding": a text packet is a type digit 0-6 and its payload, or "b" and base64
    (a binary message); a binary frame is always a message. The library json-decodes any payload
    that does not start with a digit, so that payload gets the depth cap first.
    """
    if isinstance(frame, bytes | bytearray):
        return
    if not frame:
        raise ValueError("empty packet")
    if frame[0] == "b":
        base64.b64decode(frame[1:], validate=True)
        return
    if frame[0] not in _ENGINE_PACKET_TYPES:
        raise ValueError(f"unknown packet type {frame[0]!r}")
    if len(frame) > 1 and not frame[1].isnumeric() and json_too_deep(frame[1:]):
        raise ValueError("JSON nested too deep")


def _is_websocket_upgrade(environ: Environ) -> bool:
    connection = {token.strip() for token in environ.get("HTTP_CONNECTION", "").lower().split(",")}
    return "upgrade" in connection and environ.get("HTTP_UPGRADE", "").lower() == "websocket"


def _request_problem(environ: Environ) -> str | None:
    """What makes this request invalid before any session is looked at, if anything."""
    method = environ.get("REQUEST_METHOD")
    # EIO v4 "HTTP long-polling": GET receives and POST sends; OPTIONS is the CORS preflight.
    # Anything else is a bad request (400, as the Node reference answers), not 405.
    if method not in ("GET", "POST", "OPTIONS"):
        return f"Method {method} not supported"
    # EIO v4 "Query parameters": `transport` is mandatory; the library defaults it to polling.
    if "transport" not in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")):
        return "Missing transport"
    return None


def _already_translated(environ: Environ) -> Environ:
    return environ


class _RequestBody:
    """The request body as the `wsgi.input` python-engineio reads (`await read(length)`)."""

    __slots__ = ("_event", "_payload", "_receive")

    def __init__(self, event: dict[str, Any], receive: Callable[[], Any]) -> None:
        self._event = event
        self._receive = receive
        self._payload: bytes | None = None

    async def read(self, length: int | None = None) -> bytes:
        if self._payload is None:
            payload = b""
            if self._event["type"] == "http.request":
                payload = self._event.get("body") or b""
                more = self._event.get("more_body", False)
                while more:
                    event = await self._receive()
                    if event["type"] != "http.request":
                        break
                    if length is None or len(payload) < length:
                        payload += event.get("body") or b""
                    more = event.get("more_body", False)
            self._payload = payload
        if length is None:
            taken, self._payload = self._payload, b""
        else:
            taken, self._payload = self._payload[:length], self._payload[length:]
        return taken


async def translate_asgi_request(scope: dict[str, Any], receive: Callable[[], Any], send: Any) -> Environ:
    """python-engineio's ASGI `translate_request`, with two differences. The library defines its
    body class inside the function, so every request made a new class (a cycle for the garbage
    collector, and 4.6 % of the connection set-up profile); and it set REMOTE_ADDR to a constant
    127.0.0.1, so every socket looked local, whatever the client's address (or, behind a trusted
    proxy, the X-Forwarded-For that uvicorn put in the scope). Otherwise the same environ."""
    event = await receive()
    if event["type"] not in ("http.request", "websocket.connect"):
        return {}
    path: str = scope["path"]
    query_string = ""
    if scope.get("query_string"):
        with contextlib.suppress(UnicodeDecodeError):
            query_string = scope["query_string"].decode("utf-8")
    client = scope.get("client") or ("127.0.0.1", 0)
    server = scope.get("server") or ("asgi", 0)
    environ: Environ = {
        "wsgi.input": _RequestBody(event, receive),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "asgi",
        "REQUEST_METHOD": scope.get("method", "GET"),
        "PATH_INFO": path,
        "QUERY_STRING": query_string,
        "RAW_URI": f"{path}?{query_string}" if query_string else path,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue  # as the library: a header that is not UTF-8 is skipped
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            key = "HTTP_" + name.replace("-", "_")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


async def _accept_and_close(server: Any, environ: Environ) -> Any:
    async def close(ws: Any) -> None:
        await ws.close()

    return await server._async["websocket"](close, server)(environ)


class _CheckedWebSocket:
    """The driver's WebSocket, refusing frames that are not Engine.IO packets.

    A refused frame reads as a broken connection (OSError), which makes the library's WebSocket
    loop end the session: EIO v4 closes the session upon an invalid packet, where the library
    raised from its decoder and left the socket open.
    """

    def __init__(self, ws: Any, max_size: int) -> None:
        self._ws = ws
        self._max_size = max_size

    async def wait(self) -> str | bytes:
        frame: str | bytes = await self._ws.wait()
        if len(frame) > self._max_size:
            raise OSError("frame larger than max_http_buffer_size")
        try:
            check_engine_frame(frame)
        except ValueError as exc:
            raise OSError(f"invalid Engine.IO packet: {exc}") from exc
        return frame

    async def send(self, message: str | bytes) -> None:
        await self._ws.send(message)

    async def close(self) -> None:
        await self._ws.close()


class PortalSocket(DirectWebSocketSocket):
    """One Engine.IO session, with the v4 rules the library's socket misses (and, from its base,
    WebSocket writes without a writer task: gateway/wstransport.py)."""

    def __init__(self, server: PortalEngineServer, sid: str) -> None:
        super().__init__(server, sid)
        self.polling = False  # a long-polling GET is waiting for packets
        self._ping_timer: asyncio.TimerHandle | None = None

    async def handle_get_request(self, environ: Environ) -> Any:
        if _is_websocket_upgrade(environ):
            # EIO v4 "Upgrade": a session upgrades once; a second WebSocket for the same sid is
            # accepted and closed at once, as Node's engine.io does (the library would start a
            # second upgrade; an HTTP refusal fails the official suite). One that arrives during
            # the probe is judged on the upgrade check, like a poll (see _poll_during_upgrade).
            if self.upgrading:
                await asyncio.sleep(UPGRADE_CHECK_INTERVAL)
            if self.upgrading or self.upgraded:
                return await _accept_and_close(self.server, environ)
            return await super().handle_get_request(environ)
        await self._require_alive()
        if self.polling:
            # EIO v4 "HTTP long-polling": one GET at a time; a second one is a protocol error that
            # closes the session. The CLOSE packet answers the GET already waiting.
            await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.EngineIOError("Duplicate poll request")
        self.polling = True
        try:
            if self.upgrading:
                return await self._poll_during_upgrade()
            return await super().handle_get_request(environ)
        finally:
            self.polling = False

    async def _poll_during_upgrade(self) -> Any:
        # EIO v4 "Upgrade": a poll that arrives while the WebSocket is being probed is answered on
        # the next upgrade check, as Node does every 100 ms: with a noop if the session is still
        # on polling, refused if the upgrade completed meanwhile (HTTP is over for this session).
        # The library answered at once, so a poll racing the client's UPGRADE packet got a noop.
        await asyncio.sleep(UPGRADE_CHECK_INTERVAL)
        if self.upgraded:
            return self.server._bad_request("Unexpected HTTP request")
        return [eio_packet.Packet(eio_packet.NOOP)]

    async def handle_post_request(self, environ: Environ) -> None:
        await self._require_alive()
        try:
            text = (await self._read_body(environ)).decode("utf-8")
            # EIO v4 "Packet encoding": packets separated by \x1e, each valid, or the session closes.
            for frame in text.split("\x1e"):
                check_engine_frame(frame)
            packets = eio_payload.Payload(encoded_payload=text).packets
            for pkt in packets:
                await self.receive(pkt)
        except (ValueError, eio_exceptions.EngineIOError) as exc:
            # Closing without waiting: the library's disconnect() would wait for a GET to collect
            # the CLOSE packet, holding this POST open for as long as the client chooses.
            await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.EngineIOError(str(exc)) from exc

    async def _read_body(self, environ: Environ) -> bytes:
        # max_http_buffer_size bounds the body even without (or with a lying) Content-Length;
        # the library trusted the header and read nothing of a chunked body.
        limit: int = self.server.max_http_buffer_size
        declared = environ.get("CONTENT_LENGTH")
        length = int(declared) if declared else limit + 1
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit and declared:
            raise eio_exceptions.ContentTooLongError("Payload too large")
        body: bytes = await environ["wsgi.input"].read(length)
        if len(body) > limit:
            raise eio_exceptions.ContentTooLongError("Payload too large")
        return body

    async def receive(self, pkt: Any) -> None:
        if pkt.packet_type == eio_packet.CLOSE and self.polling:
            # EIO v4 "HTTP long-polling": when the client closes, its pending GET ends with a noop.
            await self.queue.put(eio_packet.Packet(eio_packet.NOOP))
        await super().receive(pkt)

    async def poll(self) -> list[Any]:
        while True:
            packets: list[Any] = await super().poll()
            if not self.upgraded:
                return packets
            # EIO v4 "Upgrade": a noop only ends a long-polling cycle. The library queues one
            # after the probe even when no GET was waiting; on the WebSocket it is dropped.
            kept = [pkt for pkt in packets if pkt.packet_type != eio_packet.NOOP]
            if kept or not packets:
                return kept

    async def close(self, wait: bool = True, abort: bool = False, reason: str | None = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self.upgraded and self.writer is None:
            # The library leaves a closed WebSocket session's connection open until the client
            # hangs up or the ping times out; this sentinel ends its writer, which closes it.
            # (A session on our WebSocket has no writer task: its base closed the connection.)
            self.queue.put_nowait(None)

    def schedule_ping(self) -> None:
        # Overridden whole (it is four lines): the library starts a task per socket that sleeps
        # pingInterval, a task and its frames held by every idle connection (docs/performance.md,
        # memory); a timer does the same. EIO v4 "Heartbeat": the client has pingTimeout from when
        # the ping was due; the library started the clock when the event loop got round to sending
        # it, stretching the deadline by scheduling jitter.
        if self.last_ping:
            self.last_ping = None
            due = time.time() + self.server.ping_interval
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping_due, due)

    def _ping_due(self, due: float) -> None:
        self._ping_timer = None
        if not self.closing and not self.closed:
            self.last_ping = due
            self.send_now(eio_packet.Packet(eio_packet.PING))

    async def _websocket_handler(self, ws: Any) -> None:
        # Private in python-engineio; wrapped, not rewritten, to validate frames before decoding.
        await super()._websocket_handler(_CheckedWebSocket(ws, self.server.max_http_buffer_size))
        if not self.upgraded:
            # a failed probe leaves the library's flag set, which would answer every later GET
            # with a noop; the session simply stays on polling.
            self.upgrading = False

    async def _require_alive(self) -> None:
        # EIO v4 "Heartbeat": past pingTimeout without a pong the session is closed, and a request
        # arriving after that deadline must find it closed whether or not the monitor ran yet.
        if not await self.check_ping_timeout():
            raise eio_exceptions.SocketIsClosedError("Ping timeout")


class PortalEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """`engineio.AsyncServer` that conforms to Engine.IO v4 where the library does not."""

    _async: dict[str, Any]
    start_service_task: bool
    # Set by PortalSocketServer: the environ python-socketio keeps for a session.
    environ_of: Callable[[str], Environ | None] | None = None
    # Set by PortalSocketServer: takes a MESSAGE's data without awaiting, or declines (False).
    message_now: Callable[[str, str], bool] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # handle_request translates the request itself so it can refuse it first; the library's
        # own translation step then receives the finished environ. (A per-server copy of the
        # driver table: the driver module itself is left alone.)
        self._translate_request = (
            translate_asgi_request if self.async_mode == "asgi" else self._async["translate_request"]
        )
        self._async = {**self._async, "translate_request": _already_translated}

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        environ = self._translate_request(*args, **kwargs)
        if inspect.isawaitable(environ):
            environ = await environ
        if not environ:  # the client left before its request arrived
            return None
        problem = _request_problem(environ)
        if problem is not None:
            self._log_error_once(problem, "portal-bad-request")
            return await self._make_response(self._bad_request(problem), environ)
        if self._is_upgraded_session(environ):
            # EIO v4 "Upgrade": see PortalSocket.handle_get_request; the library refuses this
            # WebSocket with HTTP 400 before the session sees it.
            return await _accept_and_close(self, environ)
        return await super().handle_request(environ)

    def _is_upgraded_session(self, environ: Environ) -> bool:
        query = environ.get("QUERY_STRING", "")
        if "sid=" not in query or not _is_websocket_upgrade(environ):
            return False
        sid = urllib.parse.parse_qs(query).get("sid")
        socket = self.sockets.get(sid[0]) if sid else None
        return socket is not None and bool(socket.upgraded)

    async def close_session(self, sid: str, reason: str | None = None) -> None:
        """Close a session now, without waiting for a long-polling client to collect packets."""
        socket = self.sockets.get(sid)
        if socket is not None:
            await socket.close(wait=False, reason=reason or self.reason.SERVER_DISCONNECT)

    def _ok(
        self,
        packets: list[Any] | None = None,
        headers: list[tuple[str, str]] | None = None,
        jsonp_index: int | None = None,
    ) -> dict[str, Any]:
        # Private in python-engineio. EIO v4 "Sending data": a POST is acknowledged with "ok";
        # the library answers "OK".
        response: dict[str, Any] = super()._ok(packets, headers=headers, jsonp_index=jsonp_index)
        if packets is None:
            response["response"] = b"ok"
        return response

    async def _handle_connect(self, environ: Environ, transport: str, jsonp_index: int | None = None) -> Any:
        # Private in python-engineio, re-implemented because the library hard-codes its socket
        # class and we need PortalSocket. It also fixes the handshake: EIO v4 "Handshake" gives
        # pingInterval in milliseconds, and the library's int(seconds) * 1000 reports 0.3 s as 0.
        if self.start_service_task:
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid: str = self.generate_id()
        socket = PortalSocket(self, sid)
        self.sockets[sid] = socket
        interval = self.ping_interval + self.ping_interval_grace_period
        await socket.send_open(
            eio_packet.Packet(
                eio_packet.OPEN,
                {
                    "sid": sid,
                    "upgrades": self._upgrades(sid, transport),
                    "pingTimeout": round(self.ping_timeout * 1000),
                    "pingInterval": round(interval * 1000),
                    "maxPayload": self.max_http_buffer_size,
                },
            ),
            environ if transport == "websocket" else None,
        )
        accepted = await self._trigger_event("connect", sid, environ, run_async=False)
        if accepted is not None and accepted is not True:
            del self.sockets[sid]
            return self._unauthorized(accepted or None)
        socket.schedule_ping()
        if transport == "websocket":
            response = await socket.handle_get_request(environ)
            if socket.closed:
                self.sockets.pop(sid, None)
            return response
        socket.connected = True
        try:
            packets = await socket.poll()
        except eio_exceptions.QueueEmpty:
            return self._bad_request()
        return self._ok(packets, headers=self._cookie_headers(sid), jsonp_index=jsonp_index)

    def _cookie_headers(self, sid: str) -> list[tuple[str, str]] | None:
        if not self.cookie:
            return None
        attributes = (
            self.cookie
            if isinstance(self.cookie, dict)
            else {"name": self.cookie, "path": "/", "SameSite": "Lax"}
        )
        return [("Set-Cookie", self._generate_sid_cookie(sid, attributes))]


class ProtocolViolation(ValueError):
    """A client packet that breaks the Socket.IO v5 packet rules; its connection is closed."""


def _check_placeholders(data: Any, attachments: int) -> None:
    # Socket.IO v5 "Packet encoding", binary packets: a placeholder is {"_placeholder": true,
    # "num": n} with 0 <= n < attachments. The library indexes with whatever num holds (negative,
    # out of range, a string); Node refuses these as "illegal attachments".
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if not item.get("_placeholder"):
                pending.extend(item.values())
                continue
            num = item.get("num")
            if item["_placeholder"] is not True or type(num) is not int or not 0 <= num < attachments:
                raise ProtocolViolation("illegal attachment placeholder")


def _check_packet(packet_type: int, ack_id: int | None, data: Any, attachments: int) -> None:
    # Socket.IO v5 "Packet format" as the Node parser enforces it (isPayloadValid).
    binary = packet_type in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK)
    if packet_type not in range(len(sio_packet.packet_names)):
        raise ProtocolViolation("unknown packet type")
    if packet_type == sio_packet.CONNECT_ERROR:
        raise ProtocolViolation("CONNECT_ERROR is sent by servers only")
    if binary != (attachments > 0) or attachments > MAX_ATTACHMENTS:
        raise ProtocolViolation("attachment count does not match the packet type")
    if packet_type == sio_packet.CONNECT and data is not None and not isinstance(data, dict):
        raise ProtocolViolation("CONNECT payload must be an object")
    if packet_type == sio_packet.DISCONNECT and data is not None:
        raise ProtocolViolation("DISCONNECT has no payload")
    if packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
        if not isinstance(data, list) or not data:
            raise ProtocolViolation("an event is a non-empty array")
        if not isinstance(data[0], str):
            raise ProtocolViolation("an event name is a string")
        if data[0] in RESERVED_EVENTS:
            raise ProtocolViolation(f"reserved event name {data[0]!r}")
    if packet_type in (sio_packet.ACK, sio_packet.BINARY_ACK) and (
        ack_id is None or not isinstance(data, list)
    ):
        raise ProtocolViolation("an acknowledgement has an id and an array")
    if binary:
        _check_placeholders(data, attachments)


_ASCII_DIGITS = frozenset("0123456789")


def parse_event(text: str, loads: Callable[[str], Any]) -> tuple[str, int | None, list[Any]] | None:
    """The namespace, ack id and data of a text Socket.IO EVENT (`2[/ns,][id][...]`), or None.

    What `PortalPacket(encoded_packet=text)` would give, for the plain events clients send, in a
    third of its time: the packet object, python-socketio's general decode and `_check_packet`
    were 5 of an ack's 22 us (the ack workload, docs/performance.md). None for anything else
    (attachments, a query in the namespace, an id of more than 18 digits, space before the data,
    bad JSON, an event the rules refuse): the caller then leaves the packet to `PortalPacket`,
    which decides, and refuses, as before."""
    if text[:1] != "2":
        return None
    namespace = "/"
    pos = 1
    if text[1:2] == "/":
        comma = text.find(",", 1)
        if comma < 0:
            return None
        namespace = text[1:comma]
        if "?" in namespace:
            return None
        pos = comma + 1
    start = pos
    end = len(text)
    while pos < end and text[pos] in _ASCII_DIGITS:
        pos += 1
    if pos - start > 18 or text[pos : pos + 1] != "[" or json_too_deep(text):
        return None
    try:
        data = loads(text[pos:])
    except ValueError:
        return None
    if type(data) is not list or not data or type(data[0]) is not str or data[0] in RESERVED_EVENTS:
        return None
    return namespace, int(text[start:pos]) if pos > start else None, data


def _bounded_int(text: str) -> int:
    # python-engineio's rule for JSON integers (its json module's parse_int): at most 100 digits
    if len(text) > 100:
        raise ValueError("Integer is too large")
    return int(text)


_BOUNDED_DECODER = json.JSONDecoder(parse_int=_bounded_int)
# orjson reads an integer past 64 bits as a float, which is then at least 2**63 in size.
_HUGE = 2.0**63


def _huge(value: float) -> bool:
    return not -_HUGE < value < _HUGE


def _has_huge_float(data: Any) -> bool:
    return any_float(data, _huge)


class PacketJson:
    """python-engineio's json module, which Socket.IO packets use by default, answered by orjson
    wherever orjson's answer is the library's, and by the library's own rules everywhere else.

    The stdlib took 1.1 us to decode an ack's event and 1.8 us to encode its reply; orjson takes
    0.3 and 0.2 (docs/performance.md). What orjson does differently is handed to the stdlib with
    an encoder and a decoder made once: dict keys that are not strings, integers past 64 bits and
    lone surrogates (orjson refuses them), and NaN, Infinity, 1e400 and lone surrogates in text
    (orjson refuses them too). orjson reads integers past 64 bits as floats, so text that decodes to a float that large is
    read again by the stdlib. Two differences are kept on purpose: NaN and
    infinities are sent as `null`, not as the `NaN` or `Infinity` no JSON parser takes (Node's
    JSON.stringify does the same), and text beyond ASCII is sent as UTF-8 rather than as \\u escapes (as Node does)."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        if kwargs == COMPACT_ARGS:
            return compact_dumps(obj)
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: Any, **kwargs: Any) -> Any:
        if kwargs or not isinstance(text, str):
            return eio_json.loads(text, **kwargs)
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # the stdlib decides: it may take what orjson does not, or refuse it itself
        else:
            if not _has_huge_float(data):
                return data
        return _BOUNDED_DECODER.decode(text)


class PortalPacket(sio_packet.Packet):  # type: ignore[misc]
    """Socket.IO packet whose decoding refuses what the protocol (or our caps) does not allow."""

    json = PacketJson  # replaced, as in the library, by a server's own `json=` module

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        # The library's answer without its list and functools.reduce per level: it runs for
        # every packet that is made, and took 1.5 us of an ack's 6 us encode.
        pending = [data]
        while pending:
            item = pending.pop()
            if isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, dict):
                pending.extend(item.values())
            elif isinstance(item, bytes | bytearray):
                return True
        return False

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            # a binary frame is only valid as an attachment of a pending binary packet
            raise ProtocolViolation("unexpected binary frame")
        if json_too_deep(encoded_packet):
            raise ProtocolViolation("JSON nested too deep")
        try:
            attachments: int = super().decode(encoded_packet) or 0
        except (ValueError, TypeError) as exc:
            raise ProtocolViolation(f"undecodable packet: {exc}") from exc
        _check_packet(self.packet_type, self.id, self.data, attachments)
        return attachments

    def add_attachment(self, attachment: Any) -> bool:
        if not isinstance(attachment, bytes):
            raise ProtocolViolation("expected a binary attachment, got text")
        complete: bool = super().add_attachment(attachment)
        return complete


@dataclasses.dataclass(slots=True)
class _HandlerCall:
    coro: Any  # the handler's coroutine, not started
    cancelled_is_none: bool
    task: asyncio.Task[None] | None = None  # the task running it, held in _handling until it ends


class PortalSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """`socketio.AsyncServer` over PortalEngineServer, conforming and hardened.

    `namespace_exists` decides which namespaces a client may connect to (override the method or
    pass a callable); by default, those with registered handlers or listed in `namespaces`.
    `connect_timeout` closes an Engine.IO session that joins no namespace in time.
    """

    namespaces: list[str] | str

    def __init__(
        self,
        client_manager: Any = None,
        logger: Any = False,
        json: Any = None,
        async_handlers: bool = True,
        namespaces: list[str] | str | None = None,
        *,
        namespace_exists: Callable[[str], bool] | None = None,
        connect_timeout: float = 45.0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("serializer", "default") == "default":
            kwargs["serializer"] = PortalPacket
        if client_manager is None:
            client_manager = FanoutManager()
        super().__init__(
            client_manager=client_manager,
            logger=logger,
            json=json,
            async_handlers=async_handlers,
            namespaces=namespaces,
            **kwargs,
        )
        # The Engine.IO sessions trim the environ kept here once they are on their WebSocket
        # (wstransport.forget_handshake).
        self.eio.environ_of = self.environ.get
        self._declared_namespaces: list[str] | str = self.namespaces
        # namespace_exists decides admission; the library's own test must then admit everything.
        self.namespaces = "*"
        # Engine.IO hands each message to Socket.IO inline, not in a task of its own: Socket.IO
        # already runs every event handler in a task (async_handlers), so the library's extra task
        # per message only cost time (the ack workload, docs/performance.md). A socket's packets are
        # still decoded in the order they arrived.
        self.eio.async_handlers = False
        self._namespace_exists = namespace_exists
        self.connect_timeout = connect_timeout
        self._connect_deadlines: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._handling: set[asyncio.Task[None]] = set()
        self._coroutine_handlers: dict[Any, bool] = {}
        # ACKs are written as text only while packets encode as the library's do
        self._plain_acks = self.packet_class.encode is sio_packet.Packet.encode
        if self.async_handlers and self.packet_class.decode is PortalPacket.decode:
            # Handlers in order, awaited one by one (async_handlers off), need the read loop, and
            # so do the packets of another serializer (parse_event reads PortalPacket's).
            self.eio.message_now = self._event_now

    def namespace_exists(self, namespace: str) -> bool:
        if self._namespace_exists is not None:
            return self._namespace_exists(namespace)
        declared = self._declared_namespaces
        return (
            namespace in self.handlers
            or namespace in self.namespace_handlers
            or declared == "*"
            or namespace in declared
        )

    def _engineio_server_class(self) -> type[PortalEngineServer]:
        return PortalEngineServer

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        # Private in python-socketio, wrapped. Socket.IO v5 "Connection to a namespace": an unknown
        # namespace is refused with CONNECT_ERROR {"message": "Invalid namespace"} (the library
        # sends the bare string "Unable to connect").
        namespace = namespace or "/"
        if not self.namespace_exists(namespace):
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.CONNECT_ERROR, data={"message": "Invalid namespace"}, namespace=namespace
                ),
            )
            return
        await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            deadline = self._connect_deadlines.pop(eio_sid, None)
            if deadline is not None:
                deadline.cancel()

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # Private in python-socketio, wrapped. Socket.IO v5: a packet that cannot be decoded, or
        # breaks the packet rules, closes the connection (as in Node); PortalPacket raises before
        # anything is dispatched, so no handler sees it. The library logged and kept the socket.
        try:
            await super()._handle_eio_message(eio_sid, data)
        except ProtocolViolation as exc:
            logger.warning("closing Engine.IO session %s: %s", eio_sid, exc)
            self._binary_packet.pop(eio_sid, None)
            await self.eio.close_session(eio_sid)

    def _event_now(self, eio_sid: str, data: str) -> bool:
        """A Socket.IO EVENT dispatched without awaiting, from the WebSocket's `data_received`
        (gateway/wstransport.py): what `_handle_eio_message` and `_handle_event` do with one, up
        to starting its handler's task. Anything else, and anything they would refuse, is left
        to them (False), so their checks and their errors stay the only ones."""
        if eio_sid in self._binary_packet:
            return False
        parsed = parse_event(data, self.packet_class.json.loads)
        if parsed is None:
            return False
        namespace, ack_id, args = parsed
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return False
        event = args[0]
        self.logger.info('received event "%s" from %s [%s]', event, sid, namespace)
        call = self._handler_call(event, namespace, (sid, *args[1:]))
        loop = asyncio.get_running_loop()
        if call is None:
            task = loop.create_task(self._handle_event_internal(self, sid, eio_sid, args, namespace, ack_id))
            task.add_done_callback(self._handling.discard)
        else:
            task = call.task = loop.create_task(self._run_event(call, eio_sid, namespace, ack_id))
        self._handling.add(task)
        return True

    # The EVENT -> handler -> ACK path is python-socketio's (_handle_event_internal, _trigger_event,
    # _send_packet and the ACK packet's encode) done with fewer calls: those layers were 40 % of the
    # server's Python time per ack (the ack workload, docs/performance.md). The handler lookup is
    # still the library's; anything but a coroutine handler goes the library's way.

    def _handler_call(self, event: str, namespace: str, args: tuple[Any, ...]) -> _HandlerCall | None:
        handler, args = self._get_event_handler(event, namespace, args)
        if handler is not None:
            if not self._is_coroutine_function(handler):
                return None
            # _trigger_event: a cancelled function handler answers None (and is acked)
            return _HandlerCall(handler(*args), cancelled_is_none=True)
        namespace_handler, args = self._get_namespace_handler(namespace, args)
        if namespace_handler is None:
            return None
        return _HandlerCall(namespace_handler.trigger_event(event, *args), cancelled_is_none=False)

    def _is_coroutine_function(self, handler: Any) -> bool:
        try:
            return self._coroutine_handlers[handler]
        except KeyError:
            answer = self._coroutine_handlers[handler] = inspect.iscoroutinefunction(handler)
            return answer
        except TypeError:  # not hashable
            return inspect.iscoroutinefunction(handler)

    async def _run_event(self, call: _HandlerCall, eio_sid: str, namespace: str, ack_id: int | None) -> None:
        try:
            result = await call.coro
        except asyncio.CancelledError:
            if not call.cancelled_is_none:
                raise
            result = None
        finally:
            # instead of a done callback, which costs a turn of the event loop per event
            self._handling.discard(call.task)
        if ack_id is None or result == self.not_handled:
            return
        data = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        if not self._ack_now(eio_sid, namespace, ack_id, data):
            await self._send_packet(
                eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=ack_id, data=data)
            )

    def _ack_now(self, eio_sid: str, namespace: str, ack_id: int, data: list[Any]) -> bool:
        """An ACK written to the session's WebSocket as `Packet.encode` would write it, or False."""
        socket = self.eio.sockets.get(eio_sid)
        if (
            not self._plain_acks
            or not isinstance(socket, DirectWebSocketSocket)
            or socket.writer is None
            or socket.closed
            or self.packet_class.data_is_binary(data)
        ):
            return False
        text = "43" if namespace == "/" else "43" + namespace + ","  # Engine.IO MESSAGE, Socket.IO ACK
        text += str(ack_id) + self.packet_class.json.dumps(data, separators=(",", ":"))
        socket.write_frame(socket.writer, text_frame(text))
        return True

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        # Private in python-socketio, wrapped: a packet for a session on its WebSocket (an ack, a
        # direct emit) is written at once, as broadcasts are (fanout.py), instead of through
        # Engine.IO's send, send_packet and the socket's awaited send.
        socket = self.eio.sockets.get(eio_sid)
        if isinstance(socket, DirectWebSocketSocket) and socket.writer is not None and not socket.closed:
            encoded = pkt.encode()
            for part in encoded if isinstance(encoded, list) else [encoded]:
                socket.send_now(eio_packet.Packet(eio_packet.MESSAGE, part))
            return
        await super()._send_packet(eio_sid, pkt)

    async def _handle_eio_connect(self, eio_sid: str, environ: Environ) -> Any:
        # Private in python-socketio, wrapped: starts the connect timeout (Node's connectTimeout).
        result = await super()._handle_eio_connect(eio_sid, environ)
        self._connect_deadlines[eio_sid] = asyncio.get_running_loop().call_later(
            self.connect_timeout, self._connect_timed_out, eio_sid
        )
        return result

    async def _handle_eio_disconnect(self, eio_sid: str, reason: str) -> None:
        # Private in python-socketio, wrapped: the session is gone, so is its connect timeout.
        deadline = self._connect_deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.cancel()
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _connect_timed_out(self, eio_sid: str) -> None:
        self._connect_deadlines.pop(eio_sid, None)
        task = asyncio.ensure_future(self.eio.close_session(eio_sid))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
