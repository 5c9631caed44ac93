"""Test support: a real server on an ephemeral port, and real clients that record what they receive."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import socketio
import uvicorn

from agent_portal.app import PortalApp, create_app
from agent_portal.auth.passwords import PasswordService
from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol
from agent_portal.serving import PortalServer
from agent_portal.settings import Settings
from agent_portal.storage.store import ProjectRecord, UserRecord

ALL_TRANSPORTS = (["websocket"], ["polling"], ["polling", "websocket"])


@dataclass
class LiveServer:
    app: PortalApp
    url: str
    settings: Settings
    _server: uvicorn.Server
    _task: asyncio.Task[None]
    clients: list[socketio.AsyncClient] = field(default_factory=list)

    def token(
        self, user: str, role: str = "member", projects: list[str] | None = None, ttl: int = 3600
    ) -> str:
        default = ["*"] if role == "admin" else ["demo"]
        return self.app.services.tokens.issue(
            user, role, projects if projects is not None else default, ttl
        ).token  # type: ignore[arg-type]

    async def add_project(self, name: str, *, external: bool = False, path: str | None = None) -> None:
        now = datetime.now(UTC)
        await self.app.services.store.add_project(ProjectRecord(name, path, external, now, now))

    async def add_user(
        self, name: str, password: str, role: str = "member", projects: list[str] | None = None
    ) -> None:
        record = UserRecord(
            name, name, role, projects or ["demo"], PasswordService().hash(password), datetime.now(UTC)
        )
        await self.app.services.store.add_user(record)

    async def client(
        self,
        namespace: str,
        token: str | None = None,
        *,
        transports: list[str] | None = None,
        auth: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Recorder:
        sio = socketio.AsyncClient(reconnection=False)
        recorder = Recorder(sio, namespace)
        self.clients.append(sio)
        payload = auth if auth is not None else ({"token": token} if token else None)
        await sio.connect(
            self.url,
            namespaces=[namespace],
            auth=payload,
            transports=transports or ["websocket"],
            headers=headers or {},
            wait_timeout=5,
        )
        return recorder

    async def stop(self) -> None:
        for sio in self.clients:
            with contextlib.suppress(Exception):
                await sio.disconnect()
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 15)


class Recorder:
    """A connected client that keeps every event it receives, in order."""

    def __init__(self, sio: socketio.AsyncClient, namespace: str) -> None:
        self.sio = sio
        self.namespace = namespace
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        self.disconnected = asyncio.Event()

        async def on_any(event: str, *args: Any) -> None:
            self.events.append((event, args[0] if len(args) == 1 else list(args)))
            self._changed.set()

        async def on_disconnect(*_args: Any) -> None:
            self.disconnected.set()

        sio.on("*", on_any, namespace=namespace)
        sio.on("disconnect", on_disconnect, namespace=namespace)

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def wait_for(
        self, event: str, predicate: Callable[[Any], bool] = lambda _d: True, timeout: float = 5.0
    ) -> Any:
        async def _wait() -> Any:
            seen = 0
            while True:
                for name, data in self.events[seen:]:
                    if name == event and predicate(data):
                        return data
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        if data is None:
            return await self.sio.call(event, namespace=self.namespace, timeout=timeout)
        return await self.sio.call(event, data, namespace=self.namespace, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data, namespace=self.namespace)

    async def quiet(self, seconds: float = 0.3) -> None:
        """Lets in-flight deliveries land before asserting that something did NOT arrive."""
        await asyncio.sleep(seconds)

    async def close(self) -> None:
        await self.sio.disconnect()


@contextlib.asynccontextmanager
async def live_server(settings: Settings, port: int = 0) -> AsyncIterator[LiveServer]:
    """The real server on 127.0.0.1; `port` 0 picks a free one, a fixed port lets a second server
    take the place of a first (restart tests)."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then (gateway/wsproto.py)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    settings = replace(settings, host="127.0.0.1", port=port)
    app = await create_app(settings)
    config = uvicorn.Config(
        app.asgi,
        lifespan="on",
        log_level="warning",
        ws_ping_interval=None,
        http=PortalHttpProtocol,
        ws=PortalWebSocketProtocol,
    )
    server = PortalServer(config, app.sio)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    live = LiveServer(app, f"http://127.0.0.1:{port}", settings, server, task)
    try:
        yield live
    finally:
        await live.stop()
        sock.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return replace(Settings(data_dir=data_dir, secret="s" * 48, log_json=False), **overrides)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Waits for a state that neither library signals (a poll pending, a connection gone)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
