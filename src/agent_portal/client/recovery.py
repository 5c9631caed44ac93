"""Connection state recovery on the client side (decisions §7), as socket.io-client 4.6+ does it.

A socket that connects with `auth.recovery: true` gets a `pid` in its CONNECT reply, and every broadcast
it receives carries one extra last argument, its offset. Reconnecting with `auth.pid` and `auth.offset`
(the last offset received) within the server's window gets the same pid back, the socket's rooms, joins
and subscriptions restored, and every missed broadcast replayed in order before new ones.

Each namespace is its own socket with its own pid, so `auth` is per namespace. As in the official
client, a namespace that has not received any broadcast yet has no offset and cannot be recovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import socketio
from socketio import packet

# Every server event of the portal has one payload argument; an offset comes after it.
PAYLOAD_ARGS = 1


@dataclass
class _Session:
    pid: str | None = None
    offset: str | None = None
    recovered: bool = False


class Recovery:
    """The pid, last offset and recovered flag of each namespace, kept across connections."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    def auth(self, namespace: str) -> dict[str, Any]:
        """What a CONNECT to `namespace` adds to its `auth`."""
        extra: dict[str, Any] = {"recovery": True}
        session = self._sessions.get(namespace)
        if session is not None and session.pid is not None:
            extra["pid"] = session.pid
            if session.offset is not None:
                extra["offset"] = session.offset
        return extra

    def connected(self, namespace: str, data: Any) -> None:
        """Reads the CONNECT reply: the same pid back means the session was recovered."""
        pid = data.get("pid") if isinstance(data, dict) else None
        pid = pid if isinstance(pid, str) and pid else None
        session = self._sessions.setdefault(namespace, _Session())
        session.recovered = pid is not None and pid == session.pid
        if not session.recovered:
            # A new session: the old one's offsets would replay events from before this one began.
            session.offset = None
        session.pid = pid

    def strip(self, namespace: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Removes and records the offset of a broadcast; other events pass unchanged."""
        session = self._sessions.get(namespace)
        if session is None or session.pid is None:
            return args
        if len(args) <= PAYLOAD_ARGS or not isinstance(args[-1], str):
            return args  # a direct reply (`joined_project`, errors): not logged, no offset
        session.offset = args[-1]
        return args[:-1]

    def recovered(self, namespace: str) -> bool:
        session = self._sessions.get(namespace)
        return session is not None and session.recovered

    def forget(self) -> None:
        self._sessions.clear()


class RecoveringAsyncClient(socketio.AsyncClient):  # type: ignore[misc]
    """python-socketio's `AsyncClient` with per-namespace recovery `auth` and the pid of CONNECT replies.

    Both overrides are of private methods of python-socketio 5.x (checked against 5.18): it sends the
    same `auth` to every namespace, and keeps only `sid` from a CONNECT reply.
    """

    def __init__(self, recovery: Recovery, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recovery = recovery

    async def _send_packet(self, pkt: Any) -> None:
        if pkt.packet_type == packet.CONNECT:
            base = pkt.data if isinstance(pkt.data, dict) else {}
            pkt.data = {**base, **self.recovery.auth(pkt.namespace or "/")}
        await super()._send_packet(pkt)

    async def _handle_connect(self, namespace: str | None, data: Any) -> None:
        if (namespace or "/") not in self.namespaces:
            self.recovery.connected(namespace or "/", data)
        await super()._handle_connect(namespace, data)
