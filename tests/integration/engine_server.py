"""Shared by the protocol tests: a bare PortalSocketServer under uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import socketio
import uvicorn

from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol


@asynccontextmanager
async def serve_engine(sio: Any, log_level: str = "warning") -> AsyncIterator[str]:
    """Runs `sio` with the same WebSocket protocol as the product; yields `host:port`."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            socketio.ASGIApp(sio),
            lifespan="off",
            log_level=log_level,
            timeout_graceful_shutdown=1,
            http=PortalHttpProtocol,
            ws=PortalWebSocketProtocol,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await sio.shutdown()
        await task
        sock.close()
