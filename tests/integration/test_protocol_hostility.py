"""Protocol-level hostility against PortalSocketServer, on a live server.

After each hostile frame the sender's connection is closed promptly (the ping settings are long,
so no timeout does it for us), no application handler ran for it, and a bystander keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import socketio
from engine_server import serve_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent_portal.gateway.engine import MAX_JSON_DEPTH, PortalSocketServer, json_too_deep

MAX_MESSAGE = 1_000_000


@dataclass
class Call:
    event: str
    namespace: str
    sid: str
    args: tuple[Any, ...]


class RecordingNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Catch-all namespace that records every handler call and echoes `message`."""

    def __init__(self, calls: list[Call]) -> None:
        super().__init__("*")
        self.calls = calls

    async def trigger_event(self, event: str, *args: Any) -> Any:
        namespace, sid, *rest = args
        if event == "connect":
            rest = rest[1:]  # the environ
        self.calls.append(Call(event, namespace, sid, tuple(rest)))
        if event == "message":
            await self.emit("message-back", tuple(rest), to=sid, namespace=namespace)
        return None


@dataclass
class Live:
    host: str
    calls: list[Call] = field(default_factory=list)

    def websocket(self) -> str:
        return f"ws://{self.host}/socket.io/?EIO=4&transport=websocket"

    def polling(self, sid: str | None = None) -> str:
        return f"http://{self.host}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")

    def handled(self, sid: str) -> list[str]:
        return [call.event for call in self.calls if call.sid == sid]


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    # Library-default pings (25 s / 20 s): a connection closed here was closed for its frame.
    sio = PortalSocketServer(async_mode="asgi", max_http_buffer_size=MAX_MESSAGE)
    calls: list[Call] = []
    sio.register_namespace(RecordingNamespace(calls))
    async with serve_engine(sio, log_level="critical") as host:
        yield Live(host, calls)


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), 1)


@asynccontextmanager
async def connected(live: Live) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A raw Socket.IO client on `/` over WebSocket, and its Socket.IO sid."""
    async with connect(live.websocket(), max_size=None) as ws:
        await recv(ws)  # Engine.IO handshake
        await ws.send("40")
        reply = str(await recv(ws))
        assert reply.startswith("40"), reply
        yield ws, json.loads(reply[2:])["sid"]


async def assert_closed(ws: ClientConnection) -> None:
    with pytest.raises(ConnectionClosed):
        while True:
            assert await recv(ws) == "1", "only a CLOSE packet may precede the close"


async def assert_echoes(ws: ClientConnection, text: str = "still here") -> None:
    await ws.send("42" + json.dumps(["message", text]))
    assert await recv(ws) == "42" + json.dumps(["message-back", text], separators=(",", ":"))


def nested(depth: int) -> str:
    """A `message` event whose JSON nests `depth` levels, its own array included."""
    return '42["message",' + "[" * (depth - 1) + "]" * (depth - 1) + "]"


HOSTILE: dict[str, list[str | bytes]] = {
    **{
        f"reserved event {name}": [f'42["{name}","hostile"]']
        for name in (
            "connect",
            "disconnect",
            "connect_error",
            "disconnecting",
            "newListener",
            "removeListener",
        )
    },
    "reserved event in a binary packet": ['451-["disconnect",{"_placeholder":true,"num":0}]', b"hostile"],
    "empty event": ["42[]"],
    "numeric event name": ['42[7,"hostile"]'],
    "null event name": ['42[null,"hostile"]'],
    "object event name": ['42[{"hostile":1}]'],
    "event that is not an array": ['42{"hostile":1}'],
    "event without payload": ["42"],
    "placeholder out of range": ['451-["message",{"_placeholder":true,"num":1}]', b"hostile"],
    "negative placeholder": ['451-["message",{"_placeholder":true,"num":-1}]', b"hostile"],
    "placeholder num as string": ['451-["message",{"_placeholder":true,"num":"0"}]', b"hostile"],
    "placeholder num as boolean": ['451-["message",{"_placeholder":true,"num":true}]', b"hostile"],
    "placeholder flag not true": ['451-["message",{"_placeholder":"yes","num":0}]', b"hostile"],
    "binary packet without attachments": ['45["message","hostile"]'],
    "text where an attachment is due": ['451-["message",{"_placeholder":true,"num":0}]', "4hostile"],
    "attachment without a binary packet": [b"hostile"],
    "JSON one level too deep": [nested(MAX_JSON_DEPTH + 1)],
    "JSON 5000 levels deep": [nested(5000)],
    "acknowledgement without id": ['43["hostile"]'],
    "invalid acknowledgement id": ['42abc["message","hostile"]'],
    "CONNECT_ERROR from a client": ['44{"message":"hostile"}'],
    "unknown packet type": ['49["hostile"]'],
    "invalid Engine.IO packet": ["hostile"],
    "Engine.IO JSON 5000 levels deep": ["4" + "[" * 5000 + "]" * 5000],
    "frame over the size cap": ["42" + json.dumps(["message", "x" * MAX_MESSAGE])],
}


@pytest.mark.parametrize("frames", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_frame_closes_only_its_connection(live: Live, frames: list[str | bytes]) -> None:
    async with connected(live) as (bystander, bystander_sid), connected(live) as (victim, victim_sid):
        with contextlib.suppress(ConnectionClosed):  # the server may close before the last frame
            for frame in frames:
                await victim.send(frame)
        await assert_closed(victim)
        await assert_echoes(bystander)
    assert "hostile" not in repr(live.calls)
    # the genuine connect, then the genuine disconnect of the closed connection, nothing else
    assert live.handled(victim_sid) == ["connect", "disconnect"]
    assert live.handled(bystander_sid)[:2] == ["connect", "message"]


async def test_reserved_event_over_polling_closes_the_session(live: Live) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        sid = json.loads((await http.get(live.polling())).text[1:])["sid"]
        await http.post(live.polling(sid), content="40")
        sio_sid = json.loads((await http.get(live.polling(sid))).text[2:])["sid"]
        await http.post(live.polling(sid), content='42["disconnect","hostile"]')
        assert (await http.get(live.polling(sid))).status_code == 400
    assert live.handled(sio_sid) == ["connect", "disconnect"]
    assert "hostile" not in repr(live.calls)


async def test_oversize_post_is_refused(live: Live) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        sid = json.loads((await http.get(live.polling())).text[1:])["sid"]
        too_big = "42" + json.dumps(["message", "x" * MAX_MESSAGE])
        assert (await http.post(live.polling(sid), content=too_big)).status_code == 400
        assert (await http.get(live.polling(sid))).status_code == 400


async def test_deepest_allowed_json_and_large_messages_still_work(live: Live) -> None:
    async with connected(live) as (ws, _):
        await ws.send(nested(MAX_JSON_DEPTH))
        assert str(await recv(ws)).startswith('42["message-back",[[[')
        await assert_echoes(ws, "y" * (MAX_MESSAGE - 100))
        await ws.send('451-["message",{"_placeholder":true,"num":0}]')
        await ws.send(b"\x00\x01")
        assert await recv(ws) == '451-["message-back",{"_placeholder":true,"num":0}]'
        assert await recv(ws) == b"\x00\x01"


def test_depth_check_is_linear_and_never_recurses() -> None:
    # 200 000 levels would overflow any recursive parser; strings and escapes do not count.
    started = time.perf_counter()
    assert json_too_deep("[" * 200_000 + "]" * 200_000)
    assert not json_too_deep('["' + "[{" * 100_000 + '\\"]"]')
    assert not json_too_deep("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert json_too_deep("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert time.perf_counter() - started < 0.5
