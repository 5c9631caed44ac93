"""Who is in which project: several sockets (tabs) of one user are one presence (decisions §4)."""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol


class PresenceStore(Protocol):
    async def join(self, project: str, user_id: str, socket_key: str) -> bool:
        """Adds a socket; True when it is the user's first in the project."""
        ...

    async def leave(self, project: str, user_id: str, socket_key: str) -> bool:
        """Removes a socket; True when it was the user's last in the project."""
        ...

    async def count(self, project: str) -> int: ...

    async def users(self, project: str) -> list[str]: ...


class Presence:
    """In-process presence, for one node; `cluster/presence.py` keeps the same in Redis."""

    def __init__(self) -> None:
        self._sockets: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))

    async def join(self, project: str, user_id: str, socket_key: str) -> bool:
        """Adds a socket; True when it is the user's first in the project."""
        users = self._sockets[project]
        first = not users[user_id]
        users[user_id].add(socket_key)
        return first

    async def leave(self, project: str, user_id: str, socket_key: str) -> bool:
        """Removes a socket; True when it was the user's last in the project."""
        users = self._sockets.get(project)
        if not users or socket_key not in users.get(user_id, set()):
            return False
        users[user_id].discard(socket_key)
        if users[user_id]:
            return False
        del users[user_id]
        if not users:
            del self._sockets[project]
        return True

    async def count(self, project: str) -> int:
        return len(self._sockets.get(project, {}))

    async def users(self, project: str) -> list[str]:
        return sorted(self._sockets.get(project, {}))

    async def active_projects(self) -> int:
        return len(self._sockets)
