"""Broadcast fan-out on a live PortalSocketServer (gateway/fanout.py, wstransport.py, wsproto.py):
order per socket on every transport, the polling fallback, and the slow-consumer cutoff."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio
import uvicorn

from agent_portal.gateway.engine import PortalSocketServer
from agent_portal.gateway.wstransport import OUTBOUND_LIMIT, SLOW_CONSUMER
from support import ALL_TRANSPORTS

ROOM = "r"


@dataclass
class Live:
    url: str
    sio: PortalSocketServer
    disconnects: dict[str, str] = field(default_factory=dict)
    joined: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


@asynccontextmanager
async def running() -> AsyncIterator[Live]:
    from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol

    sio = PortalSocketServer(async_mode="asgi", namespaces=["/"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    live = Live(f"http://127.0.0.1:{sock.getsockname()[1]}", sio)

    @sio.on("join")  # type: ignore[untyped-decorator]
    async def join(sid: str, data: Any = None) -> bool:
        await sio.enter_room(sid, ROOM)
        live.joined.put_nowait(sid)
        return True

    @sio.on("disconnect")  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, reason: str) -> None:
        live.disconnects[sid] = reason

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
        yield live
    finally:
        server.should_exit = True
        await sio.shutdown()
        await task
        sock.close()


async def subscriber(live: Live, transports: list[str]) -> tuple[socketio.AsyncClient, list[int]]:
    client = socketio.AsyncClient(reconnection=False)
    seen: list[int] = []
    client.on("n", seen.append)
    await client.connect(live.url, transports=transports, wait_timeout=5)
    assert await client.call("join", timeout=5) is True
    await live.joined.get()
    return client, seen


async def until_count(seen: list[Any], count: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while len(seen) < count:  # noqa: ASYNC110 - the client offers no "n events arrived" signal
            await asyncio.sleep(0.02)


async def test_every_socket_gets_broadcasts_and_direct_sends_in_order_on_every_transport() -> None:
    async with running() as live:
        clients = [await subscriber(live, list(t)) for t in ALL_TRANSPORTS]
        sids = [live.sio.manager.sid_from_eio_sid(c.eio.sid, "/") for c, _ in clients]
        total = 300
        for n in range(total):
            if n % 3 == 2:  # a direct send to each socket between broadcasts
                for sid in sids:
                    await live.sio.emit("n", n, to=sid)
            else:
                await live.sio.emit("n", n, room=ROOM)
        for client, seen in clients:
            await until_count(seen, total)
            assert seen == list(range(total))
            await client.disconnect()


async def test_polling_and_websocket_sockets_in_one_room_get_the_same_broadcast() -> None:
    async with running() as live:
        ws_client, ws_seen = await subscriber(live, ["websocket"])
        poll_client, poll_seen = await subscriber(live, ["polling"])
        assert poll_client.transport() == "polling"
        await live.sio.emit("n", 7, room=ROOM, skip_sid=None)
        await until_count(ws_seen, 1)
        await until_count(poll_seen, 1)
        assert ws_seen == poll_seen == [7]
        await ws_client.disconnect()
        await poll_client.disconnect()


async def stalled_websocket(live: Live) -> socket.socket:
    """A WebSocket client that joins the room and then never reads again, with a tiny receive buffer."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, ("127.0.0.1", int(live.url.rsplit(":", 1)[1])))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(raw, request.encode())
    received = b""
    while b'"sid"' not in received:  # the 101 response and the Engine.IO OPEN packet
        chunk = await asyncio.wait_for(loop.sock_recv(raw, 4096), 5)
        assert chunk, "connection closed during the handshake"
        received += chunk
    for text in ("40", '421["join"]'):
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await loop.sock_sendall(raw, bytes((0x81, 0x80 | len(payload))) + mask + masked)
    return raw


async def test_compression_is_never_negotiated_so_one_frame_fits_every_connection() -> None:
    from websockets.asyncio.client import connect

    async with running() as live:
        url = live.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with connect(url, compression="deflate") as ws:
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
            assert str(await ws.recv()).startswith("0{"), "the Engine.IO open packet, uncompressed"


async def test_a_stalled_websocket_client_is_cut_off_and_does_not_hold_back_the_others() -> None:
    async with running() as live:
        raw = await stalled_websocket(live)
        stalled = await asyncio.wait_for(live.joined.get(), 5)
        client, seen = await subscriber(live, ["websocket"])
        big = "x" * 100_000
        count = 100  # 10 MB: more than the kernel buffers plus OUTBOUND_LIMIT
        assert count * len(big) > 4 * OUTBOUND_LIMIT
        for n in range(count):
            await live.sio.emit("n", n, room=ROOM)
            await live.sio.emit("big", big, room=ROOM)
            # the healthy client lives on this event loop: let it read, as it would between
            # a real publisher's broadcasts
            await asyncio.sleep(0.001)
        await until_count(seen, count)
        assert seen == list(range(count))
        async with asyncio.timeout(5):
            while stalled not in live.disconnects:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert live.disconnects[stalled] == SLOW_CONSUMER
        assert client.sid not in live.disconnects
        await client.disconnect()
        raw.close()


async def test_a_polling_client_that_stops_polling_is_cut_off() -> None:
    async with running() as live, httpx.AsyncClient(timeout=5) as http:
        base = f"{live.url}/socket.io/?EIO=4&transport=polling"
        opened = await http.get(base)
        sid = opened.text.split('"sid":"')[1].split('"')[0]
        await http.post(f"{base}&sid={sid}", content="40")
        await http.post(f"{base}&sid={sid}", content='421["join"]')
        stalled = await asyncio.wait_for(live.joined.get(), 5)
        big = "x" * 100_000
        for _ in range(2 * OUTBOUND_LIMIT // len(big)):
            await live.sio.emit("big", big, room=ROOM)
        async with asyncio.timeout(5):
            while stalled not in live.disconnects:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert live.disconnects[stalled] == SLOW_CONSUMER
        # the backlog was dropped; the next poll collects the CLOSE packet, not a megabyte
        last = await http.get(f"{base}&sid={sid}")
        assert len(last.content) < 1000


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_parses_as_one_final_unmasked_text_frame(length: int) -> None:
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader

    from agent_portal.gateway.wsproto import text_frame

    reader = StreamReader()
    reader.feed_data(text_frame("é" * (length // 2) + "a" * (length % 2)))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data.decode() == "é" * (length // 2) + "a" * (length % 2)


@pytest.mark.parametrize("namespace", ["/", "/project/demo"])
def test_an_event_encoded_from_its_arguments_matches_python_socketio(namespace: str) -> None:
    import json

    from socketio import packet as sio_packet

    from agent_portal.gateway.fanout import encode_event, with_last_argument

    data = {"project_name": "demo", "content": 'é\n"quoted"', "n": [1, 2.5, None]}
    args = json.dumps(["test_output", data], separators=(",", ":"))
    expected = sio_packet.Packet(sio_packet.EVENT, namespace=namespace, data=["test_output", data]).encode()
    assert encode_event(namespace, args) == expected
    with_offset = sio_packet.Packet(
        sio_packet.EVENT, namespace=namespace, data=["test_output", data, "42"]
    ).encode()
    assert encode_event(namespace, with_last_argument(args, "42")) == with_offset


async def test_frames_corked_in_one_iteration_all_arrive_before_a_server_side_close() -> None:
    # wsproto.py corks frames until the end of the event-loop iteration; a disconnect made in the
    # same iteration must still put every one of them on the wire before its CLOSE frame.
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with running() as live:
        url = live.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with connect(url) as ws:
            assert str(await ws.recv()).startswith("0{")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40{")
            await ws.send('421["join"]')
            assert await ws.recv() == "431[true]"
            sid = await live.joined.get()
            eio_sid = live.sio.manager.eio_sid_from_sid(sid, "/")
            total = 200
            for n in range(total):  # no await yields here: all of it is corked together
                await live.sio.emit("n", n, to=sid)
            await live.sio.disconnect(sid)  # the namespace's DISCONNECT ("41")
            await live.sio.eio.close_session(
                eio_sid
            )  # then Engine.IO's CLOSE ("1") and the closing handshake
            received: list[str] = []
            with pytest.raises(ConnectionClosed):
                while True:
                    received.append(str(await asyncio.wait_for(ws.recv(), 5)))
        assert received == [f'42["n",{n}]' for n in range(total)] + ["41", "1"]
        assert ws.close_code == 1000


async def test_an_upgraded_connection_leaves_no_http_protocol_for_the_cyclic_collector() -> None:
    # wsproto.PortalHttpProtocol: once the connection is the WebSocket protocol's, the HTTP
    # protocol must be freed by reference counting, not wait in a cycle for the collector.
    import gc

    from websockets.asyncio.client import connect

    from agent_portal.gateway.wsproto import PortalHttpProtocol

    def http_protocols() -> int:
        return sum(isinstance(o, PortalHttpProtocol) for o in gc.get_objects())

    async with running() as live:
        url = live.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        gc.collect()
        gc.disable()
        try:
            async with connect(url) as ws:
                assert str(await ws.recv()).startswith("0{")
                await ws.send("40")
                assert str(await ws.recv()).startswith("40{")
                assert http_protocols() == 0
        finally:
            gc.enable()


async def test_a_namespace_joined_on_the_websocket_still_sees_the_client_but_not_the_handshake() -> None:
    # wstransport.forget_handshake: once on the WebSocket, a session's environ keeps the client's
    # address and user agent for later namespace connects, and drops the rest of the request.
    from websockets.asyncio.client import connect

    async with running() as live:
        seen: list[dict[str, Any]] = []

        @live.sio.on("connect", namespace="/later")  # type: ignore[untyped-decorator]
        async def later(sid: str, environ: dict[str, Any]) -> None:
            seen.append({**environ, "headers": list(environ["asgi.scope"]["headers"])})

        url = live.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with connect(url, user_agent_header="probe/1") as ws:
            assert str(await ws.recv()).startswith("0{")
            await ws.send("40/later,")
            assert str(await ws.recv()).startswith("40/later,{")
        (environ,) = seen
        assert environ["HTTP_USER_AGENT"] == "probe/1"
        assert environ["REMOTE_ADDR"] == "127.0.0.1"
        assert "HTTP_SEC_WEBSOCKET_KEY" not in environ and "HTTP_UPGRADE" not in environ
        assert {name for name, _ in environ["headers"]} == {b"host", b"user-agent"}


async def test_a_session_upgraded_from_polling_keeps_only_the_kept_headers() -> None:
    async with running() as live:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(live.url, headers={"User-Agent": "probe/2", "X-Extra": "1"}, wait_timeout=5)
        async with asyncio.timeout(5):
            while client.transport() != "websocket" or live.sio.eio.sockets[client.eio.sid].writer is None:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        environ = live.sio.environ[client.eio.sid]
        assert environ["HTTP_USER_AGENT"] == "probe/2"
        assert "HTTP_X_EXTRA" not in environ
        await client.disconnect()


async def test_a_session_opened_on_the_websocket_never_makes_a_send_queue() -> None:
    # wstransport.send_open: its OPEN packet waits for the switch to the connection's writer, and
    # is still the first frame, before the namespace CONNECT's answer.
    from websockets.asyncio.client import connect

    async with running() as live:
        made: list[Any] = []
        create_queue = live.sio.eio.create_queue
        live.sio.eio.create_queue = lambda *args: made.append(create_queue(*args)) or made[-1]
        url = live.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with connect(url) as ws:
            opened = json_of(str(await ws.recv()), "0")
            await ws.send("40")
            assert str(await ws.recv()).startswith("40{")
            assert live.sio.eio.sockets[opened["sid"]].writer is not None
        assert made == []
        client, _ = await subscriber(live, ["polling"])  # a polling session does make one
        assert len(made) == 1
        await client.disconnect()


def json_of(frame: str, kind: str) -> Any:
    import json

    assert frame.startswith(kind), frame
    return json.loads(frame[len(kind) :])


def test_a_session_has_every_attribute_the_library_gives_one() -> None:
    # DirectWebSocketSocket.__init__ sets BaseSocket's attributes itself (all but the queue, made
    # on first use): a python-engineio that adds one must fail here, not at run time.
    from engineio.base_socket import BaseSocket

    from agent_portal.gateway.engine import PortalEngineServer, PortalSocket

    server = PortalEngineServer(async_mode="asgi")
    library, ours = vars(BaseSocket(server, "a")), vars(PortalSocket(server, "b"))
    assert set(library) - {"queue"} <= set(ours)
    for name, value in library.items():
        if name not in ("queue", "sid", "last_ping"):
            assert ours[name] == value, name
