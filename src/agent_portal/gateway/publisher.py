"""The one place events leave the server. Callers publish after their write has committed."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from typing import Any

import socketio
from pydantic import BaseModel

from agent_portal.gateway.fanout import FanoutManager, encode_event, with_last_argument
from agent_portal.gateway.recovery import ALL, RECOVERY_PREFIX, RecoveryLog
from agent_portal.gateway.rooms import SYSTEM_SCOPE, members_room, stream_rooms
from agent_portal.protocol.registry import MONITORING_PROJECT_EVENTS, PROJECT_EVENTS, SERVER_EVENTS
from agent_portal.storage.store import LogEntry, Target

log = logging.getLogger(__name__)

PORTAL = "/portal"
MONITORING = "/monitoring"
ADMIN = "/admin"
ORCHESTRATOR = "/orchestrator"


def project_namespace(project: str) -> str:
    return f"/project/{project}"


def chat_namespace(project: str) -> str:
    return f"/chat/{project}"


@functools.lru_cache(maxsize=4096)
def _project_targets(project: str, event: str) -> tuple[Target, Target]:
    """Where a project event goes: /project/{name}, and the project's /portal or /monitoring rooms.
    Kept per (project, event): building them was 2 us of every publication (docs/performance.md)."""
    rooms = stream_rooms(project, event)
    to_project = Target(project_namespace(project), (f"p:{project}", f"p:{project}:{event}"))
    if event in PROJECT_EVENTS:
        return to_project, Target(PORTAL, tuple(rooms[:2]))
    return to_project, Target(MONITORING, tuple(rooms))


@functools.lru_cache(maxsize=4096)
def _recovery_rooms(rooms: tuple[str, ...]) -> tuple[str, ...]:
    """The rooms recovery sockets join for `rooms` (they get each broadcast with its offset)."""
    return tuple(RECOVERY_PREFIX + room for room in rooms)


class Publisher:
    def __init__(self, sio: socketio.AsyncServer, log: RecoveryLog) -> None:
        self._sio = sio
        self._log = log
        log.deliver = self._deliver
        self.sent: Counter[str] = Counter()
        self.listeners: list[Any] = []

    @staticmethod
    def payload(event: str, model: BaseModel) -> dict[str, Any]:
        expected = SERVER_EVENTS.get(event)
        if expected is None or not isinstance(model, expected):
            # Every event is built from its model; a mismatch is a programming error, caught in tests.
            raise TypeError(f"{type(model).__name__} is not the model of server event {event!r}")
        return model.model_dump(mode="json", exclude_none=True)

    async def publish(self, event: str, model: BaseModel) -> None:
        """A project or monitoring event: to /project/{name}, the project's /portal room, /monitoring."""
        data = self.payload(event, model)
        project = data.get("project_name")
        if event in PROJECT_EVENTS or event in MONITORING_PROJECT_EVENTS:
            if not isinstance(project, str):
                raise ValueError(f"{event} needs a project_name")
            # One log entry, one offset, for both namespaces (migration 0005).
            await self._emit(event, data, _project_targets(project, event))
        elif event == "system_metrics":
            await self._emit(event, data, (Target(MONITORING, tuple(stream_rooms(SYSTEM_SCOPE, event))),))
        else:
            raise ValueError(f"{event} is not a project or monitoring event")
        for listener in self.listeners:
            listener(event, data)

    async def to_members(
        self, project: str, event: str, model: BaseModel, skip_sids: dict[str, list[str]] | None = None
    ) -> None:
        """Presence events, to the sockets that joined the project on /portal and /project/{name}."""
        skip = skip_sids or {}
        room = (members_room(project),)
        targets = tuple(
            Target(ns, room, tuple(skip.get(ns) or ())) for ns in (PORTAL, project_namespace(project))
        )
        await self._emit(event, self.payload(event, model), targets)

    async def to_chat(
        self, project: str, event: str, model: BaseModel, skip_sids: list[str] | None = None
    ) -> None:
        target = Target(chat_namespace(project), (ALL,), tuple(skip_sids or ()))
        await self._emit(event, self.payload(event, model), (target,))

    async def to_admins(self, event: str, model: BaseModel) -> None:
        await self._emit(event, self.payload(event, model), (Target(ADMIN, (ALL,)),))

    async def to_socket(self, namespace: str, sid: str, event: str, model: BaseModel) -> None:
        """A reply to one socket: not a broadcast, so not logged for recovery (as in Node)."""
        await self._sio.emit(event, self.payload(event, model), to=sid, namespace=namespace)
        self.sent[event] += 1

    async def _emit(self, event: str, data: dict[str, Any], targets: tuple[Target, ...]) -> None:
        # `targets` as given: a project stream's is one cached tuple that every entry of the
        # stream shares (the log keeps each entry for the recovery window, and an entry's own
        # tuple was one more object per publication for every young-generation GC pass to walk).
        await self._log.submit(targets, event, data, self._encode_args(event, data))

    def _encode_args(self, event: str, data: dict[str, Any]) -> str:
        # The JSON of the event's arguments, once per publication (python-socketio encodes a packet
        # per emit: twice per namespace, plain and with the offset, and again per namespace).
        encoded: str = self._sio.packet_class.json.dumps([event, data], separators=(",", ":"))
        return encoded

    async def _deliver(self, entries: list[LogEntry]) -> None:
        """Sends logged broadcasts, in order, to this node's sockets (in a cluster, every node runs
        this): as one `FanoutBatch`, so that a socket gets a run of them in one write."""
        manager = self._sio.manager
        if not isinstance(manager, FanoutManager):
            for entry in entries:  # a manager of the library's encodes and sends for itself
                await self._deliver_one(entry)
            return
        batch = manager.batch()
        rooms = manager.rooms
        for entry in entries:
            args = entry.encoded or self._encode_args(entry.event, entry.data)
            with_offset: str | None = None
            for target in entry.targets:
                namespace = target.namespace
                present = rooms.get(namespace)
                if not present:
                    continue
                # Sockets still being sent what they missed get it from the log, after the rest.
                replaying = self._log.replaying(namespace)
                held_back = (*target.skip, *replaying) if replaying else target.skip
                # Each kind of room only where it has members: on the product bench every
                # subscriber asked for recovery, and the plain packet was encoded for no one.
                if not present.keys().isdisjoint(target.rooms):
                    batch.add(encode_event(namespace, args), namespace, target.rooms, held_back)
                recovering = _recovery_rooms(target.rooms)
                if not present.keys().isdisjoint(recovering):
                    # the same arguments plus the offset as a last one: `[event, data, "offset"]`
                    with_offset = with_offset or with_last_argument(args, str(entry.offset))
                    batch.add(encode_event(namespace, with_offset), namespace, recovering, held_back)
            self.sent[entry.event] += 1
        await batch.send()

    def _recovering_rooms(self, namespace: str, rooms: tuple[str, ...]) -> list[str]:
        """The rooms recovery sockets join for `rooms`, if any of them has a member here."""
        recovering = list(_recovery_rooms(rooms))
        present = self._sio.manager.rooms.get(namespace, {})
        return recovering if any(r in present for r in recovering) else []

    async def _deliver_one(self, entry: LogEntry) -> None:
        event, data = entry.event, entry.data
        for target in entry.targets:
            namespace, rooms = target.namespace, list(target.rooms)
            held_back = [*target.skip, *self._log.replaying(namespace)]
            await self._sio.emit(event, data, room=rooms, namespace=namespace, skip_sid=held_back)
            recovering = self._recovering_rooms(namespace, target.rooms)
            if recovering:
                offset = str(entry.offset)
                await self._sio.emit(
                    event, (data, offset), room=recovering, namespace=namespace, skip_sid=held_back
                )
        self.sent[event] += 1
