"""Property-based fuzzing of every namespace over a live server (decisions §3, §8): malformed payloads
(wrong types, huge strings, deep nesting, extra fields, several arguments) and random event names.
Each is answered with `{ok: false, error: WebSocketError}` carrying the right code, the socket stays
usable, another client keeps being served, and nothing a refused event carried reaches the database.

How hypothesis meets asyncio here: the server and every client live on ONE event loop that runs in a
background thread for the whole module (one live server, not one per example). The tests themselves
are plain synchronous `@given` functions; each example hands one coroutine to that loop with
`run_coroutine_threadsafe` and waits for its result. Hypothesis thus owns its control flow (examples,
shrinking, health checks) and never has to know about the loop, and the loop never blocks on
hypothesis. Rate limits are raised in the settings so the limiter does not answer in the fuzzer's place.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from attack import audit_rows, row_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agent_portal.gateway.engine import RESERVED_EVENTS
from agent_portal.protocol.common import WebSocketError
from agent_portal.protocol.registry import (
    AUTHENTICATE_EVENT,
    CLIENT_EVENTS,
    SERVER_EVENTS,
    NamespaceKind,
    client_events_for,
)
from agent_portal.settings import SecurityLimits
from support import LiveServer, Recorder, live_server, make_settings

T = TypeVar("T")
# Each example is a batch sent at once: replies that carry an event before the ack wait ~40 ms on the
# wire (see the report in the commit), so concurrency keeps ~1500 attempts within CI time.
EXAMPLES_PER_TARGET = 22
BATCH = 10

# target -> (namespace, kind, authenticated?)
TARGETS: dict[str, tuple[str, NamespaceKind, bool]] = {
    "portal": ("/portal", NamespaceKind.PORTAL, True),
    "project": ("/project/demo", NamespaceKind.PROJECT, True),
    "chat": ("/chat/demo", NamespaceKind.CHAT, True),
    "monitoring": ("/monitoring", NamespaceKind.MONITORING, True),
    "admin": ("/admin", NamespaceKind.ADMIN, True),
    "orchestrator": ("/orchestrator", NamespaceKind.ORCHESTRATOR, True),
    "anonymous": ("/chat/demo", NamespaceKind.CHAT, False),
}
# One valid, read-only call per target: proves the socket is still usable and writes nothing.
LIVENESS: dict[str, tuple[str, Any, bool]] = {
    "portal": ("subscribe_to_events", {"events": ["task_update"]}, True),
    "project": ("get_snapshot", {}, True),
    "chat": ("get_history", {"limit": 1}, True),
    "monitoring": ("subscribe_to_events", {"events": ["test_output"]}, True),
    "admin": ("get_config", {"config_type": "security"}, True),
    "orchestrator": ("publish", {"event": "nope", "data": {}}, False),
    "anonymous": ("get_history", {}, False),
}
KNOWN_NAMES = {name for events in CLIENT_EVENTS.values() for name in events} | {AUTHENTICATE_EVENT}


class Arena:
    """A live server and its clients on an event loop of their own, driven from synchronous code."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-arena", daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()
        self.clients: dict[str, Recorder] = {}
        self.run(self._start(data_dir))

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    async def _start(self, data_dir: Path) -> None:
        limits = SecurityLimits(events_per_second=1000, events_per_minute=60000)
        self.server: LiveServer = await self.stack.enter_async_context(
            # A long grace keeps the unauthenticated target connected for the whole module.
            live_server(replace(make_settings(data_dir), security=limits, auth_grace_seconds=3600))
        )
        await self.server.add_project("demo")
        await self.server.add_project("ext", external=True)
        admin = self.server.token("mallory", "admin")
        for target, (namespace, kind, authenticated) in TARGETS.items():
            if kind is NamespaceKind.ORCHESTRATOR:
                token: str | None = self.server.token("bot", "orchestrator", ["ext"])
            else:
                token = admin if authenticated else None
            self.clients[target] = await self.server.client(namespace, token)
        self.bystander = await self.server.client("/chat/demo", self.server.token("bob"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.stack.aclose())
        with contextlib.suppress(Exception):
            self.run(self._cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        """Library tasks (pings, service loops) that outlive the server's shutdown, so the loop closes clean."""
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    arena = Arena(tmp_path_factory.mktemp("fuzz"))
    try:
        yield arena
    finally:
        arena.close()


# --- what a hostile client sends ------------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=24,
)


def _nest(depth: int, as_dict: bool) -> Any:
    value: Any = "core"
    for _ in range(depth):
        value = {"d": value} if as_dict else [value]
    return value


# Within the engine's depth cap (the frame's own array and the payload object take two levels).
deep = st.builds(_nest, st.integers(min_value=1, max_value=25), st.booleans())
huge = st.integers(min_value=9_000, max_value=400_000).map(lambda n: "x" * n)
hostile = json_value | deep | huge | st.binary(max_size=2048)
# A value no field of any client model accepts: a list whose item is an object with an unknown key.
never_valid = st.builds(lambda v: [{"\x00not-a-field": v}], json_value | deep)


@dataclass(frozen=True)
class Attempt:
    event: str
    args: tuple[Any, ...]
    expected: str  # the error code the ack must carry

    def __repr__(self) -> str:  # huge strings make hypothesis' reports unreadable
        return f"Attempt({self.event!r}, {repr(self.args)[:300]}, expected={self.expected!r})"


def invalid_payload(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Payloads that `model` must refuse: by construction, whatever else they contain."""
    fields = sorted(model.model_fields)
    base = (
        st.dictionaries(st.sampled_from(fields), json_value, max_size=len(fields)) if fields else st.just({})
    )
    not_an_object = (json_leaf | st.lists(json_value, max_size=5) | huge | st.binary(max_size=512)).filter(
        lambda v: v is not None
    )
    extra_key = st.text(min_size=1, max_size=40).filter(lambda k: k not in fields)
    extra = st.builds(lambda d, k, v: {**d, k: v}, base, extra_key, hostile)
    options = [not_an_object, extra]
    if fields:
        wrong = st.builds(lambda d, f, v: {**d, f: v}, base, st.sampled_from(fields), never_valid | huge)
        options.append(wrong)
    return st.one_of(options)


def attempts(kind: NamespaceKind, authenticated: bool) -> st.SearchStrategy[Attempt]:
    events = client_events_for(kind)

    def refused_as(event: str, args: tuple[Any, ...]) -> Attempt:
        # The order of decisions §2/§3: one payload, then identity, then the event, then its schema.
        if len(args) != 1:
            code = "validation_failed"
        elif not authenticated and event != AUTHENTICATE_EVENT:
            code = "not_authenticated"
        elif event not in events:
            code = "unknown_event"
        else:
            code = "validation_failed"
        return Attempt(event, args, code)

    known = st.sampled_from(sorted(events)).flatmap(
        lambda e: invalid_payload(events[e]).map(lambda p: refused_as(e, (p,)))
    )
    foreign_names = sorted((KNOWN_NAMES | set(SERVER_EVENTS) | {"message"}) - set(events) - RESERVED_EVENTS)
    random_names = st.text(min_size=1, max_size=100).filter(lambda n: n not in KNOWN_NAMES | RESERVED_EVENTS)
    unknown = st.builds(
        lambda e, p: refused_as(e, (p,)),
        st.sampled_from(foreign_names) | random_names,
        hostile,
    )
    several = st.builds(
        lambda e, ps: refused_as(e, tuple(ps)),
        st.sampled_from(sorted(events)),
        st.lists(json_value.filter(lambda v: v is not None), min_size=2, max_size=4),
    )
    return st.one_of(known, known, unknown, several)


# --- the property -----------------------------------------------------------------------------------


async def answered_with_error(client: Recorder, attempt: Attempt) -> None:
    reply = await client.sio.call(attempt.event, attempt.args, namespace=client.namespace, timeout=10)
    assert isinstance(reply, dict) and reply.get("ok") is False, reply
    error = WebSocketError.model_validate(reply["error"])
    assert error.code == attempt.expected, (attempt, reply)
    assert error.type in ("validation", "authentication")
    assert client.sio.connected and client.namespace in client.sio.namespaces, "the socket must stay open"


async def still_served(arena: Arena, target: str) -> None:
    event, data, succeeds = LIVENESS[target]
    reply = await arena.clients[target].call(event, data)
    assert reply["ok"] is succeeds, reply
    bystander = arena.bystander
    assert (await bystander.call("get_history", {"limit": 1}))["ok"] is True


@pytest.mark.parametrize("target", list(TARGETS))
def test_malformed_events_are_refused_and_leave_no_trace(arena: Arena, target: str) -> None:
    _namespace, kind, authenticated = TARGETS[target]
    client = arena.clients[target]
    before, audit_before = row_counts(arena.server), len(audit_rows(arena.server))
    sent = 0

    @settings(
        max_examples=EXAMPLES_PER_TARGET,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(attempts(kind, authenticated), min_size=BATCH, max_size=BATCH))
    def one(batch: list[Attempt]) -> None:
        nonlocal sent

        async def send_all() -> None:
            await asyncio.gather(*(answered_with_error(client, attempt) for attempt in batch))
            await still_served(arena, target)

        arena.run(send_all())
        sent += len(batch)

    one()
    assert sent >= EXAMPLES_PER_TARGET * BATCH
    arena.run(still_served(arena, target))
    assert client.of("validation_error") or client.of("error") or client.of("authentication_failed")
    # Nothing from a refused event is stored. Refused input is not a security action of decisions §4,
    # so it is not audited either (the limiter was raised: no rate-limit hits to audit).
    assert row_counts(arena.server) == before
    assert len(audit_rows(arena.server)) == audit_before
    assert not arena.bystander.of("message_received") and not arena.bystander.of("config_changed")
