"""Builds the Socket.IO server: transport settings of decisions §1 and the gateway as its one handler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from socketio import packet as sio_packet

from agent_portal.settings import Settings


class OriginPolicy:
    """Cross-origin requests and WebSocket upgrades are refused unless the origin is allowed (decisions §1).

    The server's own origin is whatever Host the request came to, so it works on any port and name.
    """

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = {o.rstrip("/") for o in allowed}

    def __call__(self, origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            # Non-browser clients (python-socketio, Node) send no Origin; CSWSH needs a browser, which always does.
            return True
        origin = origin.rstrip("/")
        if origin in self.allowed:
            return True
        host = environ.get("HTTP_HOST")
        scheme = environ.get("wsgi.url_scheme", "http")
        return host is not None and origin in (f"http://{host}", f"https://{host}", f"{scheme}://{host}")


def _recovering(base: type[Any]) -> type[Any]:
    """Adds what connection state recovery needs at the packet level: extra fields (`pid`) in a
    socket's CONNECT reply, and a hook that runs once that reply has been sent (the replay)."""

    class RecoveringServer(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.connect_extras: dict[tuple[str, str], dict[str, Any]] = {}
            self.after_connect_sent: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {}
            self._hooks: set[asyncio.Task[None]] = set()

        async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
            # Private in python-socketio, wrapped: the CONNECT reply is built inside the library.
            if (
                pkt.packet_type != sio_packet.CONNECT
                or not isinstance(pkt.data, dict)
                or "sid" not in pkt.data
            ):
                await super()._send_packet(eio_sid, pkt)
                return
            key = (pkt.namespace or "/", pkt.data["sid"])
            extra = self.connect_extras.pop(key, None)
            if extra:
                pkt.data = {**pkt.data, **extra}
            await super()._send_packet(eio_sid, pkt)
            hook = self.after_connect_sent.pop(key, None)
            if hook is not None:
                task = asyncio.ensure_future(hook())
                self._hooks.add(task)
                task.add_done_callback(self._hooks.discard)

        def forget(self, namespace: str, sid: str) -> None:
            self.connect_extras.pop((namespace, sid), None)
            self.after_connect_sent.pop((namespace, sid), None)

    return RecoveringServer


def build_socket_server(
    settings: Settings, client_manager: Any = None, server_class: type[Any] | None = None
) -> Any:
    from agent_portal.gateway.engine import PortalSocketServer

    cls = _recovering(server_class or PortalSocketServer)
    return cls(
        async_mode="asgi",
        client_manager=client_manager,
        namespaces="*",
        cors_allowed_origins=OriginPolicy(settings.allowed_origins),
        cors_credentials=True,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_message_bytes,
        transports=["polling", "websocket"],
        always_connect=False,
        logger=False,
        engineio_logger=False,
    )


def asgi_app(sio: Any, other: Any) -> socketio.ASGIApp:
    return socketio.ASGIApp(sio, other_asgi_app=other, socketio_path="socket.io")
