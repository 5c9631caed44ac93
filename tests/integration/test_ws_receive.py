"""The receive side of PortalWebSocketProtocol (gateway/wsproto.py) and the Engine.IO sessions
that take messages straight from it (gateway/wstransport.py), driven by a raw TCP client that
frames by hand: frames split at every byte, every length encoding, fragments with a ping in
between, frames websockets must refuse, and packets that must keep their order across the
direct path and the session's read loop."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
import uvicorn
from socketio import packet as sio_packet
from websockets.http11 import Request

from agent_portal.gateway.engine import PortalPacket, PortalSocketServer
from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol
from support import until

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


@dataclass
class Live:
    port: int
    server: uvicorn.Server
    sio: PortalSocketServer
    disconnects: list[str] = field(default_factory=list)

    def protocols(self) -> list[PortalWebSocketProtocol]:
        return [c for c in self.server.server_state.connections if isinstance(c, PortalWebSocketProtocol)]


@asynccontextmanager
async def running(proto: int = socket.IPPROTO_TCP, **options: Any) -> AsyncIterator[Live]:
    sio = PortalSocketServer(async_mode="asgi", namespaces=["/", "/other"], **options)
    disconnects: list[str] = []

    async def echo(sid: str, data: Any = None) -> Any:
        return data

    async def disconnect(sid: str, reason: str) -> None:
        disconnects.append(reason)

    sio.on("echo", echo)
    sio.on("echo", echo, namespace="/other")
    sio.on("disconnect", disconnect)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        socketio.ASGIApp(sio),
        lifespan="off",
        log_level="critical",
        timeout_graceful_shutdown=1,
        http=PortalHttpProtocol,
        ws=PortalWebSocketProtocol,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield Live(sock.getsockname()[1], server, sio, disconnects)
    finally:
        server.should_exit = True
        await sio.shutdown()
        await task
        sock.close()


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """A client frame (RFC 6455 §5.2), masked with a random key unless told otherwise."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(packet: str) -> bytes:
    return frame(TEXT, packet.encode())


class RawClient:
    """An Engine.IO v4 / Socket.IO v5 client on a bare TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, namespaces: Iterable[str] = ("/",)) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        client = cls(reader, writer)
        _, payload = await client.next_frame()
        assert payload.startswith(b"0{"), payload  # Engine.IO OPEN
        for namespace in namespaces:
            await client.join(namespace)
        return client

    async def join(self, namespace: str) -> None:
        self.send(text("40" if namespace == "/" else f"40{namespace},"))
        assert (await self.next_text()).startswith("40"), namespace

    def send(self, data: bytes, chunk: int | None = None) -> None:
        if chunk is None:
            self.writer.write(data)
            return
        for i in range(0, len(data), chunk):
            self.writer.write(data[i : i + chunk])

    async def send_slowly(self, data: bytes, chunk: int) -> None:
        # one write per chunk, each drained, so the server reads them as separate segments
        for i in range(0, len(data), chunk):
            self.writer.write(data[i : i + chunk])
            await self.writer.drain()
            await asyncio.sleep(0)

    async def next_frame(self, timeout: float = 5) -> tuple[int, bytes]:
        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

        return await asyncio.wait_for(read(), timeout)

    async def next_text(self) -> str:
        while True:
            opcode, payload = await self.next_frame()
            if opcode == TEXT:
                message = payload.decode()
                if message != "2":  # an Engine.IO ping
                    return message
            assert opcode != CLOSE, payload

    async def close_code(self) -> int:
        """Reads until the server's close frame, and returns its code."""
        while True:
            opcode, payload = await self.next_frame()
            if opcode == CLOSE:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005

    def close(self) -> None:
        self.writer.close()


def event(ack: int, data: Any, namespace: str = "/") -> bytes:
    prefix = "" if namespace == "/" else f"{namespace},"
    return text(f"42{prefix}{ack}" + json.dumps(["echo", data]))


def ack_of(ack: int, data: Any, namespace: str = "/") -> str:
    prefix = "" if namespace == "/" else f"{namespace},"
    return f"43{prefix}{ack}" + json.dumps([data], separators=(",", ":"))


async def test_the_connection_parses_its_frames_itself_once_the_handshake_is_done() -> None:
    async with running(proto=0) as live:
        client = await RawClient.open(live.port)
        try:
            (protocol,) = live.protocols()
            # Without this the direct path below is never taken (websockets changed its parser?):
            # everything still works, through uvicorn's queue, but every test here would pass
            # without testing it.
            assert protocol.parses_frames
            assert protocol.receiver is not None, "the session takes its messages directly"
            client.send(event(1, "hello"))
            assert await client.next_text() == ack_of(1, "hello")
        finally:
            client.close()


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 64, 1000])
async def test_events_split_at_any_byte_arrive_whole_and_in_order(chunk: int) -> None:
    # 125 / 126 / 65535 / 65536 bytes: the last 7-bit length, both ends of the 16-bit one, and
    # the 64-bit one (RFC 6455 §5.2 payload length).
    sizes = [0, 1, 100, 115, 116, 200, 65525, 65526, 70000]
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            data = b"".join(event(i, "x" * size) for i, size in enumerate(sizes))
            if chunk < 64:
                await client.send_slowly(data[:3000], chunk)  # every boundary of the small ones
                client.send(data[3000:], 4096)
            else:
                await client.send_slowly(data, chunk)
            for i, size in enumerate(sizes):
                assert await client.next_text() == ack_of(i, "x" * size)
        finally:
            client.close()


async def test_an_open_connection_lets_go_of_websockets_protocol_and_rebuilds_it_when_needed() -> None:
    # ~1.2 KB per idle connection: held only while a frame needs websockets (a ping, fragments, a
    # close), and built again in the state the connection is in.
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            (protocol,) = live.protocols()
            assert protocol._conn is None, "an idle connection holds no websockets protocol"
            client.send(event(1, "direct"))
            assert await client.next_text() == ack_of(1, "direct")
            assert protocol._conn is None, "text frames are parsed without it"
            client.send(frame(PING, b"still there?"))
            assert await client.next_frame() == (PONG, b"still there?")
            assert protocol._conn is not None
            # websockets, rebuilt, is in the connection's state: it joins fragments, then hands back
            client.send(frame(TEXT, b'423["echo"', fin=False) + frame(CONT, b',"split"]') + event(4, "next"))
            assert await client.next_text() == ack_of(3, "split")
            assert await client.next_text() == ack_of(4, "next")
            client.send(frame(CLOSE, struct.pack("!H", 1000)))
            assert await client.close_code() == 1000
        finally:
            client.close()


async def test_a_fragmented_message_with_a_ping_between_its_fragments_keeps_its_place() -> None:
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            whole = ('42{}["echo","' + "f" * 300 + '"]').format(2).encode()
            client.send(
                event(1, "before")
                + frame(TEXT, whole[:10], fin=False)
                + frame(PING, b"are you there")
                + frame(CONT, whole[10:200], fin=False)
                + frame(CONT, whole[200:])
                + event(3, "after"),
                chunk=3,
            )
            # the pong is written at once, the acks when their handlers have run
            frames = [await client.next_frame() for _ in range(4)]
            assert (PONG, b"are you there") in frames
            acks = [payload.decode() for opcode, payload in frames if opcode == TEXT]
            assert acks == [ack_of(1, "before"), ack_of(2, "f" * 300), ack_of(3, "after")]
        finally:
            client.close()


async def test_packets_keep_their_order_across_the_direct_path_and_the_read_loop() -> None:
    # The namespace CONNECT goes through the session's read loop (its handler is awaited); the
    # events written right behind it, in the same segment, must wait for it and not be dropped
    # as events for a namespace the socket has not joined.
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            client.send(
                event(1, "a")
                + text("40/other,")
                + event(2, "b", "/other")
                + event(3, "c")
                + event(4, "d", "/other")
            )
            replies = [await client.next_text() for _ in range(5)]
            assert replies[0] == ack_of(1, "a")
            assert replies[1].startswith("40/other,")
            assert replies[2:] == [ack_of(2, "b", "/other"), ack_of(3, "c"), ack_of(4, "d", "/other")]
            (protocol,) = live.protocols()
            await asyncio.sleep(0.05)
            assert protocol.receiver is not None, "the direct path resumes once the loop caught up"
            client.send(event(5, "e", "/other"))
            assert await client.next_text() == ack_of(5, "e", "/other")
        finally:
            client.close()


async def test_a_binary_event_and_its_attachment_take_the_read_loop_in_order() -> None:
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            client.send(
                event(1, "a")
                + text('451-7["echo",{"_placeholder":true,"num":0}]')
                + frame(BINARY, b"\x00\x01\x02")
                + event(8, "b")
            )
            assert await client.next_text() == ack_of(1, "a")
            assert await client.next_text() == '461-7[{"_placeholder":true,"num":0}]'
            opcode, payload = await client.next_frame()
            assert (opcode, payload) == (BINARY, b"\x00\x01\x02")
            assert await client.next_text() == ack_of(8, "b")
        finally:
            client.close()


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(TEXT, b'42["echo","\xff\xfe"]'), 1007),  # not UTF-8
        (frame(TEXT, b'42["echo"]', masked=False), 1002),  # a client must mask
        (frame(TEXT, b'42["echo"]', rsv=4), 1002),  # reserved bit, no extension
        (frame(CONT, b"stray"), 1002),  # continuation of nothing
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),  # new message inside a fragmented one
        (frame(0x3, b""), 1002),  # reserved opcode
        (frame(PING, b"x" * 126), 1002),  # control frames carry at most 125 bytes
    ],
    ids=["invalid-utf8", "unmasked", "rsv", "stray-cont", "interleaved", "opcode", "long-ping"],
)
async def test_a_frame_that_breaks_rfc_6455_closes_its_connection_with_the_rfc_code(
    bad: bytes, code: int
) -> None:
    async with running() as live:
        client = await RawClient.open(live.port)
        other = await RawClient.open(live.port)
        try:
            client.send(event(1, "fine"))
            assert await client.next_text() == ack_of(1, "fine")
            client.send(bad + event(2, "never"))
            assert await client.close_code() == code
            other.send(event(3, "unaffected"))
            assert await other.next_text() == ack_of(3, "unaffected")
        finally:
            client.close()
            other.close()


async def test_a_frame_larger_than_the_limit_is_refused_before_its_payload_arrives() -> None:
    async with running() as live:
        limit = live.server.config.ws_max_size
        client = await RawClient.open(live.port)
        try:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, limit + 1) + os.urandom(4)
            client.send(header)  # no payload follows: the header alone must be enough
            assert await client.close_code() == 1009
        finally:
            client.close()


async def test_the_client_closing_handshake_is_answered_and_later_bytes_are_ignored() -> None:
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            client.send(event(1, "last"))
            assert await client.next_text() == ack_of(1, "last")
            client.send(frame(CLOSE, struct.pack("!H", 1000) + b"bye") + event(2, "ignored"))
            assert await client.close_code() == 1000
            assert await asyncio.wait_for(client.reader.read(), 5) == b"", "then the server hangs up"
        finally:
            client.close()


def suspended_handlers() -> list[str]:
    return [
        obj.__qualname__
        for obj in gc.get_objects()
        if asyncio.iscoroutine(obj) and "_websocket_handler" in obj.__qualname__ and obj.cr_frame is not None
    ]


async def test_an_idle_session_holds_no_asgi_call_chain_and_still_does_everything() -> None:
    async with running(proto=0) as live:
        client = await RawClient.open(live.port)
        try:
            (protocol,) = live.protocols()
            # the app's task (uvicorn's run_asgi) has ended, the connection has not
            assert protocol.detached and not protocol.tasks
            assert suspended_handlers() == []
            # nor the handshake: websockets' handshake parser is gone, and the request it parsed
            assert [o for o in gc.get_objects() if isinstance(o, Request)] == []
            client.send(event(1, "direct"))
            assert await client.next_text() == ack_of(1, "direct")
            client.send(text("40/other,"))  # declined: wakes the session's read loop
            assert (await client.next_text()).startswith("40/other,")
            client.send(event(2, "after the wake", "/other"))
            assert await client.next_text() == ack_of(2, "after the wake", "/other")
            await asyncio.sleep(0.05)
            assert suspended_handlers() == [], "parked again once the queue was empty"
        finally:
            client.close()
        await until(lambda: live.disconnects == ["transport close"])  # "/" has the handler


async def test_a_parked_session_answers_heartbeats_and_outlives_many_ping_intervals() -> None:
    async with running(ping_interval=0.1, ping_timeout=0.3) as live:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(f"http://127.0.0.1:{live.port}", transports=["websocket"])
        try:
            await asyncio.sleep(1.5)  # 15 pings, each PONG taken without waking the session
            assert client.connected and live.disconnects == []
            assert await client.call("echo", "alive", timeout=5) == "alive"
        finally:
            await client.disconnect()


async def test_a_parked_session_closed_by_the_server_closes_its_connection() -> None:
    async with running() as live:
        client = await RawClient.open(live.port)
        try:
            (sid,) = list(live.sio.manager.rooms["/"][None])
            await live.sio.eio.close_session(live.sio.manager.eio_sid_from_sid(sid, "/"))
            assert await client.close_code() == 1000
            client.send(frame(CLOSE, struct.pack("!H", 1000)))  # the closing handshake's reply
            await until(lambda: live.protocols() == [])
            assert live.disconnects == ["server disconnect"]
        finally:
            client.close()


@pytest.mark.parametrize("namespace", ["/", "/other"])
async def test_an_ack_is_written_as_the_library_encodes_it(namespace: str) -> None:
    data = {"é": [1, -2.5, None, "\u2028"], "big": 2**70}
    async with running() as live:
        client = await RawClient.open(live.port, namespaces=[namespace])
        try:
            client.send(event(123, data, namespace))
            expected = PortalPacket(sio_packet.ACK, namespace=namespace, id=123, data=[data]).encode()
            assert await client.next_text() == "4" + expected
        finally:
            client.close()


async def test_the_handshake_response_keeps_uvicorns_headers_and_is_followed_by_the_open_packet() -> None:
    async with running() as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        try:
            writer.write(
                b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).lower()
            assert head.startswith(b"http/1.1 101")
            # the accept key of RFC 6455's own example key
            assert b"sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=" in head
            assert head.count(b"\r\ndate: ") == 1 and b"\r\nserver: uvicorn" in head
            client = RawClient(reader, writer)
            _, payload = await client.next_frame()
            assert payload.startswith(b"0{") and b'"sid"' in payload  # Engine.IO OPEN
        finally:
            writer.close()


UPGRADE = (
    b"GET /socket.io/?EIO=4&transport=websocket&x=%C3%A9 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nUser-Agent: Probe/1\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
)


async def test_a_plain_upgrade_taken_from_httptools_gets_what_websockets_gives() -> None:
    # The first request is taken over from httptools' parse (wsproto.plain_upgrade); the second,
    # with a subprotocol offered (which websockets ignores: none is served), goes through
    # websockets' parse. Both must get the same 101 and give the app the same environ.
    requests = [UPGRADE + b"\r\n", UPGRADE + b"Sec-WebSocket-Protocol: chat\r\n\r\n"]
    async with running() as live:
        environs: list[dict[str, Any]] = []

        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            environs.append(environ)

        live.sio.on("connect", connect)
        heads: list[list[bytes]] = []
        taken: list[bool] = []  # whether the request was taken over (no websockets Request)
        for request in requests:
            reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
            try:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                heads.append([line for line in head.split(b"\r\n") if not line.startswith(b"date: ")])
                client = RawClient(reader, writer)
                _, payload = await client.next_frame()
                assert payload.startswith(b"0{"), payload
                (protocol,) = live.protocols()
                taken.append(protocol._accept_key is not None)
                await client.join("/")
            finally:
                writer.close()
            await until(lambda: not live.protocols())
        assert taken == [True, False]
        assert heads[0] == heads[1]
        assert heads[0][0] == b"HTTP/1.1 101 Switching Protocols"
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in heads[0]
        fast, slow = environs
        for key in (
            "REQUEST_METHOD",
            "PATH_INFO",
            "QUERY_STRING",
            "HTTP_USER_AGENT",
            "HTTP_HOST",
            "REMOTE_ADDR",
        ):
            assert fast[key] == slow[key], key
        assert fast["QUERY_STRING"] == "EIO=4&transport=websocket&x=%C3%A9"
        fast_scope, slow_scope = fast["asgi.scope"], slow["asgi.scope"]
        for key in ("type", "scheme", "path", "raw_path", "query_string", "server", "root_path"):
            assert fast_scope[key] == slow_scope[key], key
        assert (
            fast_scope["headers"]
            == slow_scope["headers"]
            == [(b"host", b"127.0.0.1"), (b"user-agent", b"Probe/1")]
        )
        assert slow_scope["subprotocols"] == ["chat"] and fast_scope["subprotocols"] == []


async def test_a_refused_upgrade_still_gets_websockets_answer() -> None:
    async with running() as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        try:
            writer.write(UPGRADE.replace(b"Version: 13", b"Version: 8") + b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 400"), head
        finally:
            writer.close()


async def test_the_server_side_of_a_websocket_has_nagle_off() -> None:
    # The test server's listening socket has proto 0, on which asyncio leaves Nagle on
    # (wsproto._no_delay); with it on, an event and its ack 44 ms apart (delayed ACK).
    async with running(proto=0) as live:
        client = await RawClient.open(live.port)
        try:
            (protocol,) = live.protocols()
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            client.close()
