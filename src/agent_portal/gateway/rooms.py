"""Room names. Subscriptions are rooms, so one broadcast per event reaches exactly the right sockets,
on one node or (through the manager) on many."""

from __future__ import annotations

import sys
from collections.abc import Iterable

SYSTEM_SCOPE = "~"
ALL_PROJECTS_SCOPE = "*"


def stream_rooms(scope: str, event: str) -> list[str]:
    """Rooms an event of `scope` (a project name, or SYSTEM_SCOPE) is emitted to in a namespace."""
    rooms = [f"p:{scope}", f"p:{scope}:{event}"]
    if scope != SYSTEM_SCOPE:
        rooms += [f"p:{ALL_PROJECTS_SCOPE}", f"p:{ALL_PROJECTS_SCOPE}:{event}"]
    return rooms


def subscription_rooms(scopes: Iterable[str], subscriptions: dict[str | None, frozenset[str]]) -> set[str]:
    """The rooms a socket belongs to for the scopes it follows and the events it narrowed to.

    Interned, as every socket keeps its rooms' names: sockets in the same rooms share the strings."""
    rooms: set[str] = set()
    for scope in scopes:
        events = subscriptions.get(scope, subscriptions.get(None))
        if events is None:
            rooms.add(sys.intern(f"p:{scope}"))
        else:
            rooms.update(sys.intern(f"p:{scope}:{event}") for event in events)
    return rooms


def members_room(project: str) -> str:
    """Sockets counted in a project's presence; `user_joined` / `user_left` go here."""
    return f"members:{project}"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"
