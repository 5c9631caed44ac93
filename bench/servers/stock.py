"""Reference server: stock python-socketio AsyncServer under uvicorn, one process."""

from __future__ import annotations

from importlib.metadata import version

import socketio
from benchapp import serve

if __name__ == "__main__":
    serve(socketio.AsyncServer, f"stock python-socketio {version('python-socketio')}")
