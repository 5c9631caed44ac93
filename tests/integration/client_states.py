"""Shared by the Python client tests: records a PortalClient's connection states and waits for them."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from agent_portal.client import ConnectionState, PortalClient, StateChange
from support import LiveServer, live_server, make_settings


class States:
    def __init__(self, client: PortalClient) -> None:
        self.changes: list[StateChange] = []
        self._changed = asyncio.Event()
        client.on_state(self._record)

    def _record(self, change: StateChange) -> None:
        self.changes.append(change)
        self._changed.set()

    def of(self, state: ConnectionState) -> list[StateChange]:
        return [c for c in self.changes if c.state is state]

    async def wait(self, state: ConnectionState, count: int = 1, timeout: float = 8.0) -> StateChange:
        async def _wait() -> StateChange:
            while len(self.of(state)) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.of(state)[count - 1]

        return await asyncio.wait_for(_wait(), timeout)


def server_on(data_dir: Path, port: int, **overrides: Any) -> AbstractAsyncContextManager[LiveServer]:
    """A server on a fixed port, so a second one can take the first one's place."""
    return live_server(make_settings(data_dir, **overrides), port=port)
