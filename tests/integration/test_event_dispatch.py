"""How PortalSocketServer runs a client's EVENT and answers its ack (gateway/engine.py `_event_now`):
python-socketio's own rules. Every test runs against stock `socketio.AsyncServer` too, through a
real server and the python-socketio client over WebSocket, for every kind of handler the library
knows: the two must answer alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio
from engine_server import serve_engine

from agent_portal.gateway.engine import PortalSocketServer

NOT_ACKED = object()


class Room(socketio.AsyncNamespace):  # type: ignore[misc]
    async def on_shout(self, sid: str, data: Any) -> Any:
        return str(data).upper()

    async def on_give_up(self, sid: str, data: Any) -> Any:
        raise asyncio.CancelledError


class Anywhere(socketio.AsyncNamespace):  # type: ignore[misc]
    async def trigger_event(self, event: str, namespace: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return True
        return {"event": event, "namespace": namespace, "args": list(args[1:])}


@pytest.fixture(params=["stock", "portal"])
def kind(request: pytest.FixtureRequest) -> type[socketio.AsyncServer]:
    return socketio.AsyncServer if request.param == "stock" else PortalSocketServer


@asynccontextmanager
async def server(
    kind: type[socketio.AsyncServer], anywhere: bool = True
) -> AsyncIterator[tuple[str, list[str]]]:
    sio = kind(async_mode="asgi", namespaces="*")
    seen: list[str] = []

    @sio.on("value")  # type: ignore[untyped-decorator]
    async def value(sid: str, data: Any) -> Any:
        return data

    @sio.on("pair")  # type: ignore[untyped-decorator]
    async def pair(sid: str, a: Any, b: Any) -> tuple[Any, Any]:
        return a, b

    @sio.on("nothing")  # type: ignore[untyped-decorator]
    async def nothing(sid: str) -> None:
        seen.append("nothing")

    @sio.on("bytes")  # type: ignore[untyped-decorator]
    async def raw(sid: str, data: str) -> bytes:
        return data.encode()

    @sio.on("plain")  # type: ignore[untyped-decorator]
    def plain(sid: str, data: Any) -> Any:  # not a coroutine: the library's path
        return ["plain", data]

    @sio.on("slow")  # type: ignore[untyped-decorator]
    async def slow(sid: str, data: float) -> float:
        await asyncio.sleep(data)
        return data

    @sio.on("fails")  # type: ignore[untyped-decorator]
    async def fails(sid: str) -> None:
        seen.append("fails")
        raise RuntimeError("handler bug")

    @sio.on("give_up")  # type: ignore[untyped-decorator]
    async def give_up(sid: str) -> None:
        raise asyncio.CancelledError

    @sio.on("*", namespace="/catch")  # type: ignore[untyped-decorator]
    async def catch_all(event: str, sid: str, data: Any) -> Any:
        return {"caught": event, "data": data}

    @sio.on("connect", namespace="/catch")  # type: ignore[untyped-decorator]
    async def connect_catch(sid: str, environ: Any, auth: Any) -> None:
        pass

    sio.register_namespace(Room("/room"))
    if anywhere:
        sio.register_namespace(Anywhere("*"))
    async with serve_engine(sio) as address:
        yield address, seen


@asynccontextmanager
async def client(address: str, namespaces: list[str]) -> AsyncIterator[socketio.AsyncClient]:
    sio = socketio.AsyncClient()
    await sio.connect(f"http://{address}", transports=["websocket"], namespaces=namespaces)
    try:
        yield sio
    finally:
        await sio.disconnect()


async def ask(
    sio: socketio.AsyncClient, event: str, *args: Any, namespace: str = "/", wait: float = 2
) -> Any:
    try:
        return await sio.call(event, args if len(args) != 1 else args[0], namespace=namespace, timeout=wait)
    except socketio.exceptions.TimeoutError:
        return NOT_ACKED


@pytest.mark.parametrize(
    ("event", "args", "expected"),
    [
        (
            "value",
            ({"a": [1, 2.5, None, True], "é": "\u2028😀"},),
            {"a": [1, 2.5, None, True], "é": "\u2028😀"},
        ),
        ("value", (2**70,), 2**70),  # past 64 bits, both ways
        ("value", ([],), []),
        ("pair", ("a", {"b": 1}), ("a", {"b": 1})),  # a tuple is acked as several arguments
        ("nothing", (), None),  # None is acked with no arguments
        ("bytes", ("raw",), b"raw"),  # binary: the library's BINARY_ACK
        ("plain", (3,), ["plain", 3]),  # a plain function
    ],
)
async def test_a_function_handler_is_acked_with_what_it_returns(
    kind: type[socketio.AsyncServer], event: str, args: tuple[Any, ...], expected: Any
) -> None:
    async with server(kind) as (address, _), client(address, ["/"]) as sio:
        # the client sends a tuple as several arguments, a single value as one
        answer = await sio.call(event, args if len(args) != 1 else args[0], timeout=5)
        assert answer == expected


async def test_handlers_of_a_namespace_class_and_of_a_catch_all_are_acked(
    kind: type[socketio.AsyncServer],
) -> None:
    async with server(kind) as (address, _), client(address, ["/room", "/catch", "/any"]) as sio:
        assert await ask(sio, "shout", "hi", namespace="/room") == "HI"
        assert await ask(sio, "whatever", 7, namespace="/catch") == {"caught": "whatever", "data": 7}
        assert await ask(sio, "x", 1, namespace="/any") == {"event": "x", "namespace": "/any", "args": [1]}


async def test_an_event_without_a_handler_is_not_acked_and_the_socket_goes_on(
    kind: type[socketio.AsyncServer],
) -> None:
    async with server(kind, anywhere=False) as (address, _), client(address, ["/", "/room"]) as sio:
        assert await ask(sio, "no_such_event", 1, wait=0.5) is NOT_ACKED
        # AsyncNamespace answers an event it has no method for with None, and that is acked
        assert await ask(sio, "no_such_event", 1, namespace="/room") is None
        assert await ask(sio, "value", "still") == "still"


async def test_a_failing_handler_is_not_acked_and_the_socket_goes_on(
    kind: type[socketio.AsyncServer],
) -> None:
    async with server(kind) as (address, seen), client(address, ["/"]) as sio:
        assert await ask(sio, "fails", wait=0.5) is NOT_ACKED
        assert seen == ["fails"]
        assert await ask(sio, "value", "still") == "still"


async def test_a_cancelled_handler_is_acked_as_the_library_acks_it(kind: type[socketio.AsyncServer]) -> None:
    # python-socketio answers a cancelled function handler as if it returned None; a namespace
    # class's own trigger_event decides for itself, and AsyncNamespace's also answers None.
    async with server(kind) as (address, _), client(address, ["/", "/room"]) as sio:
        assert await ask(sio, "give_up") is None
        assert await ask(sio, "give_up", 1, namespace="/room") is None


async def test_handlers_run_concurrently_and_each_ack_finds_its_caller(
    kind: type[socketio.AsyncServer],
) -> None:
    async with server(kind) as (address, _), client(address, ["/"]) as sio:
        answers = await asyncio.gather(
            ask(sio, "slow", 0.3), ask(sio, "value", "quick"), ask(sio, "slow", 0.1)
        )
        assert answers == [0.3, "quick", 0.1]


async def test_an_event_sent_without_an_ack_runs_its_handler_and_gets_no_reply(
    kind: type[socketio.AsyncServer],
) -> None:
    async with server(kind) as (address, seen), client(address, ["/"]) as sio:
        await sio.emit("nothing")
        assert await ask(sio, "value", "after") == "after"
        assert seen == ["nothing"]
