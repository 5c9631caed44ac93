"""agent-portal bare path: PortalSocketServer from agent_portal.gateway.engine, else stock (said so)."""

from __future__ import annotations

import importlib
import sys

import socketio
from benchapp import serve


def portal_server_class() -> tuple[type[socketio.AsyncServer], str]:
    try:
        engine = importlib.import_module("agent_portal.gateway.engine")
    except ImportError as exc:
        return socketio.AsyncServer, f"agent_portal.gateway.engine not importable ({exc})"
    server_class = getattr(engine, "PortalSocketServer", None)
    if not (isinstance(server_class, type) and issubclass(server_class, socketio.AsyncServer)):
        return socketio.AsyncServer, "agent_portal.gateway.engine has no PortalSocketServer"
    return server_class, ""


if __name__ == "__main__":
    server_class, why_not = portal_server_class()
    if why_not:
        print(f"portal: FALLBACK to stock python-socketio: {why_not}", file=sys.stderr, flush=True)
        serve(server_class, "portal (fallback: stock python-socketio)")
    else:
        from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol
        from agent_portal.serving import tune_gc

        tune_gc()  # as `agent-portal serve` does
        label = f"portal {server_class.__module__}.{server_class.__qualname__}"
        # As `agent-portal serve` (cli.py): no WebSocket pings, Engine.IO has its own heartbeat.
        serve(server_class, label, ws=PortalWebSocketProtocol, http=PortalHttpProtocol, ws_ping_interval=None)
