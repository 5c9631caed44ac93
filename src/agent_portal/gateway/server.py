"""Builds the Socket.IO server: transport settings of decisions §1 and the gateway as its one handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio

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


def build_socket_server(
    settings: Settings, client_manager: Any = None, server_class: Callable[..., Any] | None = None
) -> Any:
    from agent_portal.gateway.engine import PortalSocketServer

    cls = server_class or PortalSocketServer
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
