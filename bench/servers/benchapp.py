"""The bench protocol on a python-socketio AsyncServer (or subclass), served by uvicorn.

Namespace ``/bench``: ``join {room}`` enters the room and acks ``{ok: true}``; ``broadcast {room, payload,
t}`` emits ``msg`` with the same data to the room (acks if asked); ``echo`` acks its argument. ``POST
/broadcast`` with the same JSON is the HTTP trigger. Engine.IO settings match bench/node/server.js.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import socketio
import uvicorn

NAMESPACE = "/bench"
PING_INTERVAL_S = 25
PING_TIMEOUT_S = 20
MAX_HTTP_BUFFER_SIZE = 1_000_000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def make_server(server_class: type[socketio.AsyncServer]) -> socketio.AsyncServer:
    sio: socketio.AsyncServer = server_class(
        async_mode="asgi",
        ping_interval=PING_INTERVAL_S,
        ping_timeout=PING_TIMEOUT_S,
        max_http_buffer_size=MAX_HTTP_BUFFER_SIZE,
        cors_allowed_origins="*",
        http_compression=False,
    )

    @sio.on("join", namespace=NAMESPACE)  # type: ignore[untyped-decorator]
    async def join(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        await sio.enter_room(sid, str(data["room"]), namespace=NAMESPACE)
        return {"ok": True}

    @sio.on("broadcast", namespace=NAMESPACE)  # type: ignore[untyped-decorator]
    async def broadcast(sid: str, data: dict[str, Any]) -> dict[str, bool]:
        await sio.emit("msg", data, room=str(data["room"]), namespace=NAMESPACE)
        return {"ok": True}

    @sio.on("echo", namespace=NAMESPACE)  # type: ignore[untyped-decorator]
    async def echo(sid: str, data: Any) -> Any:
        return data

    return sio


def make_app(sio: socketio.AsyncServer) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def http_trigger(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST" and scope["path"] == "/broadcast":
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            data = json.loads(body)
            await sio.emit("msg", data, room=str(data["room"]), namespace=NAMESPACE)
            status = 204
        elif scope["path"] == "/health":
            status = 200
        else:
            status = 404
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app: Callable[[Scope, Receive, Send], Awaitable[None]] = socketio.ASGIApp(
        sio, other_asgi_app=http_trigger
    )
    return app


def serve(
    server_class: type[socketio.AsyncServer],
    label: str,
    ws: type[Any] | None = None,
    http: type[Any] | None = None,
    **uvicorn_options: Any,
) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = make_app(make_server(server_class))
    print(f"{label} listening on 127.0.0.1:{args.port}", flush=True)
    # uvicorn's defaults otherwise (uvloop, httptools, websockets-sansio when installed), one process;
    # `ws` and `http` replace uvicorn's protocol classes (the portal's, gateway/wsproto.py);
    # `uvicorn_options` are the other settings the portal's `agent-portal serve` changes.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        **({"ws": ws} if ws is not None else {}),
        **({"http": http} if http is not None else {}),
        **uvicorn_options,
    )
