"""Engine.IO v4 / Socket.IO v5 conformance of PortalSocketServer, on a live server, raw protocol.

Each test states the rule it checks, from the protocol specifications
(github.com/socketio/engine.io-protocol, github.com/socketio/socket.io-protocol); the official
suites themselves are run outside the repository (docs/conformance.md).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from engine_server import serve_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent_portal.gateway.engine import PortalSocketServer
from support import until

JS = Path(__file__).resolve().parents[1] / "js"
SHORT_PINGS = {"ping_interval": 0.3, "ping_timeout": 0.2}


class EchoNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Catch-all namespace, like the product's: echoes `message`, acks `message-with-ack`."""

    def __init__(self, calls: list[tuple[str, str]]) -> None:
        super().__init__("*")
        self.calls = calls

    async def trigger_event(self, event: str, *args: Any) -> Any:
        namespace, sid, *rest = args
        self.calls.append((event, namespace))
        if event == "message":
            await self.emit("message-back", tuple(rest), to=sid, namespace=namespace)
        elif event == "message-with-ack":
            return tuple(rest)
        return None


@dataclass
class Live:
    host: str
    sio: PortalSocketServer
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def polling(self, sid: str | None = None) -> str:
        return f"{self.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")

    def websocket(self, sid: str | None = None) -> str:
        return f"ws://{self.host}/socket.io/?EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[Live]:
    """PortalSocketServer under uvicorn on 127.0.0.1:<free port>; namespaces `/` and `/custom`."""
    settings: dict[str, Any] = {"namespace_exists": {"/", "/custom"}.__contains__, **options}
    sio = PortalSocketServer(async_mode="asgi", cors_allowed_origins="*", **settings)
    calls: list[tuple[str, str]] = []
    sio.register_namespace(EchoNamespace(calls))
    async with serve_engine(sio) as host:
        yield Live(host, sio, calls)


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    async with running() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2) as client:
        yield client


def open_packet(text: str) -> dict[str, Any]:
    assert text.startswith("0"), text
    return dict(json.loads(text[1:]))


async def open_polling(http: httpx.AsyncClient, live: Live) -> str:
    response = await http.get(live.polling())
    assert response.status_code == 200
    return str(open_packet(response.text)["sid"])


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 1)


async def assert_closed(ws: ClientConnection) -> None:
    """The server closes this connection within a second (a CLOSE packet may come first)."""
    with pytest.raises(ConnectionClosed):
        while True:
            assert await recv(ws) in ("1", "2"), "nothing but CLOSE (or a ping) before closing"


# --- Engine.IO v4: handshake ------------------------------------------------------------------


async def test_handshake_reports_sub_second_intervals_in_milliseconds(http: httpx.AsyncClient) -> None:
    # EIO v4 "Handshake": pingInterval and pingTimeout are in milliseconds; maxPayload in bytes;
    # polling may upgrade to websocket, a WebSocket session has no upgrades.
    async with running(max_http_buffer_size=1_000_000, **SHORT_PINGS) as live:
        polling = open_packet((await http.get(live.polling())).text)
        async with connect(live.websocket()) as ws:
            websocket = open_packet(str(await recv(ws)))
    for handshake in (polling, websocket):
        assert handshake["pingInterval"] == 300
        assert handshake["pingTimeout"] == 200
        assert handshake["maxPayload"] == 1_000_000
        assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert polling["upgrades"] == ["websocket"]
    assert websocket["upgrades"] == []


@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=", "EIO=4&transport=abc", "transport=polling"])
async def test_request_without_valid_transport_or_version_is_refused(
    live: Live, http: httpx.AsyncClient, query: str
) -> None:
    # EIO v4 "Query parameters": EIO=4 and a known transport are mandatory; a missing transport is
    # not taken as polling.
    response = await http.get(f"{live.url}/socket.io/?{query}")
    assert response.status_code == 400
    assert not live.sio.eio.sockets


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_methods_other_than_get_and_post_are_bad_requests(
    live: Live, http: httpx.AsyncClient, method: str
) -> None:
    # EIO v4 "HTTP long-polling": GET receives, POST sends; anything else is a 400 (not 405).
    assert (await http.request(method, live.polling())).status_code == 400


async def test_post_without_session_is_a_bad_request(live: Live, http: httpx.AsyncClient) -> None:
    assert (await http.post(live.polling(), content="4hello")).status_code == 400


# --- Engine.IO v4: long-polling ---------------------------------------------------------------


async def test_post_is_acknowledged_with_lowercase_ok(live: Live, http: httpx.AsyncClient) -> None:
    # EIO v4 "Sending data": the server answers a successful POST with "ok".
    sid = await open_polling(http, live)
    response = await http.post(live.polling(sid), content="40")
    assert (response.status_code, response.text) == (200, "ok")
    assert (await http.get(live.polling(sid))).text.startswith('40{"sid":')


async def test_invalid_packet_over_polling_closes_the_session(live: Live, http: httpx.AsyncClient) -> None:
    # EIO v4: a payload that is not a sequence of packets closes the session.
    sid = await open_polling(http, live)
    assert (await http.post(live.polling(sid), content="abc")).status_code == 400
    assert (await http.get(live.polling(sid))).status_code == 400


async def test_duplicate_poll_closes_the_session(live: Live, http: httpx.AsyncClient) -> None:
    # EIO v4 "HTTP long-polling": one GET at a time. A second one closes the session: it gets 400,
    # the pending one is answered with a CLOSE packet, and the session is gone.
    sid = await open_polling(http, live)
    first = asyncio.create_task(http.get(live.polling(sid)))
    await until(lambda: live.sio.eio.sockets[sid].polling)
    second = await http.get(live.polling(sid))
    assert second.status_code == 400
    assert ((await first).status_code, (await first).text) == (200, "1")
    assert (await http.get(live.polling(sid))).status_code == 400


async def test_client_close_over_polling_ends_the_pending_poll_with_noop(
    live: Live, http: httpx.AsyncClient
) -> None:
    # EIO v4: on the client's CLOSE packet the pending GET is answered with a noop, then the session
    # is closed.
    sid = await open_polling(http, live)
    pending = asyncio.create_task(http.get(live.polling(sid)))
    await until(lambda: live.sio.eio.sockets[sid].polling)
    assert (await http.post(live.polling(sid), content="1")).status_code == 200
    assert ((await pending).status_code, (await pending).text) == (200, "6")
    assert (await http.get(live.polling(sid))).status_code == 400


async def test_heartbeat_over_polling(http: httpx.AsyncClient) -> None:
    # EIO v4 "Heartbeat": the server pings every pingInterval; the client's pong keeps the session.
    async with running(**SHORT_PINGS) as live:
        sid = await open_polling(http, live)
        for _ in range(2):
            assert (await http.get(live.polling(sid))).text == "2"
            assert (await http.post(live.polling(sid), content="3")).text == "ok"


async def test_ping_timeout_over_polling_closes_the_session(http: httpx.AsyncClient) -> None:
    # EIO v4 "Heartbeat": without a pong within pingTimeout of the ping, the session is closed;
    # a request after that deadline finds it closed, whether or not a monitor has run yet.
    async with running(**SHORT_PINGS) as live:
        sid = await open_polling(http, live)
        await asyncio.sleep(0.3 + 0.2 + 0.02)
        assert (await http.get(live.polling(sid))).status_code == 400


# --- Engine.IO v4: WebSocket and upgrade --------------------------------------------------------


async def test_invalid_packet_over_websocket_closes_the_connection(live: Live) -> None:
    async with connect(live.websocket()) as ws:
        await recv(ws)
        await ws.send("abc")
        await assert_closed(ws)


async def test_upgrade_from_polling_to_websocket(live: Live, http: httpx.AsyncClient) -> None:
    # EIO v4 "Upgrade": probe (2probe/3probe), the pending poll ends with a noop, the client sends
    # UPGRADE; from then on only the WebSocket carries the session and HTTP requests are refused.
    sid = await open_polling(http, live)
    pending = asyncio.create_task(http.get(live.polling(sid)))
    await until(lambda: live.sio.eio.sockets[sid].polling)
    async with connect(live.websocket(sid)) as ws:
        await ws.send("2probe")
        assert await recv(ws) == "3probe"
        assert (await pending).text == "6"
        await ws.send("5")
        await ws.send("40")
        assert str(await recv(ws)).startswith('40{"sid":')
        assert (await http.get(live.polling(sid))).status_code == 400
        await ws.send('42["message","over the websocket"]')
        assert await recv(ws) == '42["message-back","over the websocket"]'


async def test_no_noop_leaks_onto_the_websocket_after_upgrade(live: Live, http: httpx.AsyncClient) -> None:
    # EIO v4 "Upgrade": a noop only ends a polling cycle; with no poll pending at the probe, the
    # first packet on the upgraded WebSocket is the application's, not a stray "6".
    sid = await open_polling(http, live)
    async with connect(live.websocket(sid)) as ws:
        await ws.send("2probe")
        assert await recv(ws) == "3probe"
        await ws.send("5")
        await ws.send("40")
        assert str(await recv(ws)).startswith('40{"sid":')


async def test_a_second_websocket_for_an_upgraded_session_is_closed(
    live: Live, http: httpx.AsyncClient
) -> None:
    # EIO v4 "Upgrade": a session upgrades once. As in Node's engine.io (and the official suite's
    # "ignores WebSocket connection with same sid after upgrade"), a second WebSocket for the sid
    # is accepted and closed, carrying nothing, and the first one goes on.
    sid = await open_polling(http, live)
    async with connect(live.websocket(sid)) as ws:
        await ws.send("2probe")
        assert await recv(ws) == "3probe"
        await ws.send("5")
        async with connect(live.websocket(sid)) as second:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(second.recv(), 5)
        await ws.send("40")
        assert str(await recv(ws)).startswith('40{"sid":')
        assert live.sio.eio.sockets[sid].upgraded


async def test_a_second_websocket_during_the_probe_is_closed(live: Live, http: httpx.AsyncClient) -> None:
    # Node closes a WebSocket for a session that is still upgrading; the probe in flight completes.
    sid = await open_polling(http, live)
    async with connect(live.websocket(sid)) as ws:
        await ws.send("2probe")
        assert await recv(ws) == "3probe"
        async with connect(live.websocket(sid)) as second:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(second.recv(), 5)
        await ws.send("5")
        await ws.send("40")
        assert str(await recv(ws)).startswith('40{"sid":')


# --- Socket.IO v5 -------------------------------------------------------------------------------


async def test_unknown_namespace_is_refused_with_invalid_namespace(live: Live) -> None:
    # Socket.IO v5 "Connection to a namespace": CONNECT_ERROR with {"message": "Invalid namespace"}.
    async with connect(live.websocket()) as ws:
        await recv(ws)
        await ws.send("40/random,")
        assert await recv(ws) == '44/random,{"message":"Invalid namespace"}'
        await ws.send('40/custom,{"token":"abc"}')
        assert str(await recv(ws)).startswith('40/custom,{"sid":')


async def test_namespace_exists_decides_admission() -> None:
    # The hook: a subclass (or a callable) decides which namespaces exist, even behind '*'.
    class Projects(PortalSocketServer):
        def namespace_exists(self, namespace: str) -> bool:
            return namespace.startswith("/project-")

    sio = Projects(async_mode="asgi")
    sio.register_namespace(socketio.AsyncNamespace("*"))
    assert sio.namespace_exists("/project-7") and not sio.namespace_exists("/")
    default = PortalSocketServer(async_mode="asgi")
    default.register_namespace(socketio.AsyncNamespace("/chat"))
    assert default.namespace_exists("/chat") and default.namespace_exists("/")
    assert not default.namespace_exists("/random")


async def test_session_that_joins_no_namespace_is_closed_after_connect_timeout() -> None:
    async with (
        running(connect_timeout=0.2) as live,
        connect(live.websocket()) as idle,
        connect(live.websocket()) as joined,
    ):
        await recv(idle)
        await recv(joined)
        await joined.send("40")
        await recv(joined)
        await assert_closed(idle)
        await joined.send('42["message",1]')
        assert await recv(joined) == '42["message-back",1]'


# --- the official clients still work -----------------------------------------------------------

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "upgrade": ["polling", "websocket"]}


@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_python_socketio_client(live: Live, mode: str) -> None:
    client = socketio.AsyncClient()
    echoed: asyncio.Queue[Any] = asyncio.Queue()
    client.on("message-back", echoed.put_nowait, namespace="/custom")
    await client.connect(live.url, transports=TRANSPORTS[mode], namespaces=["/", "/custom"])
    try:
        if mode == "upgrade":
            await until(lambda: client.transport() == "websocket")
        assert client.transport() == TRANSPORTS[mode][-1]
        assert await client.call("message-with-ack", (1, "two", {"3": [True]})) == (1, "two", {"3": [True]})
        await client.emit("message", b"\x00\x01binary", namespace="/custom")
        assert await asyncio.wait_for(echoed.get(), 1) == b"\x00\x01binary"
    finally:
        await client.disconnect()


JS_SCENARIO = """
import { io } from "socket.io-client";
const [url, transports] = [process.argv[1], JSON.parse(process.argv[2])];
const socket = io(url + "/custom", { transports, reconnection: false });
const timer = setTimeout(() => { console.log(JSON.stringify({ error: "timeout" })); process.exit(1); }, 5000);
socket.on("connect_error", (err) => { console.log(JSON.stringify({ error: err.message })); process.exit(1); });
socket.on("connect", async () => {
  const ack = await new Promise((resolve) =>
    socket.emit("message-with-ack", 1, "two", { three: [true] }, (...args) => resolve(args)));
  socket.once("message-back", (data) => {
    if (socket.io.engine.transport.name !== transports.at(-1)) return;
    console.log(JSON.stringify({ ack, echo: [...data], transport: socket.io.engine.transport.name }));
    clearTimeout(timer);
    socket.close();
  });
  const send = () => socket.emit("message", Uint8Array.from([1, 2, 3]));
  if (socket.io.engine.transport.name === transports.at(-1)) send();
  else socket.io.engine.once("upgrade", send);
});
"""


@pytest.mark.node
@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_official_socket_io_client(live: Live, mode: str) -> None:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "socket.io-client").exists():
        pytest.skip("needs node and the packages of tests/js")
    proc = await asyncio.create_subprocess_exec(
        node,
        "--input-type=module",
        "-e",
        JS_SCENARIO,
        live.url,
        json.dumps(TRANSPORTS[mode]),
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), 10)
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out == {
        "ack": [1, "two", {"three": [True]}],
        "echo": [1, 2, 3],
        "transport": TRANSPORTS[mode][-1],
    }
