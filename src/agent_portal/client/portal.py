"""PortalClient: an asyncio client of the portal on python-socketio's `AsyncClient`.

One Engine.IO session carries every namespace the client connects; each namespace's CONNECT carries
`{token}` (and, with recovery on, `{recovery, pid, offset}` of that namespace). Reconnection is driven
here, not by python-socketio (its own is off), with the spec's backoff. After a reconnect, a namespace whose
session was recovered already has its joins and subscriptions, and its missed events are replayed; any
other namespace joins its projects and narrows its streams again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar, overload

import socketio
from pydantic import BaseModel, ValidationError

from agent_portal.client.auth import Session
from agent_portal.client.backoff import Backoff
from agent_portal.client.errors import (
    ConnectRefused,
    NetworkError,
    PortalError,
    ServerError,
    from_wire,
    local_error,
)
from agent_portal.client.recovery import RecoveringAsyncClient, Recovery
from agent_portal.protocol import server_events as s
from agent_portal.protocol.common import Ack, WebSocketError
from agent_portal.protocol.registry import SERVER_EVENTS

log = logging.getLogger(__name__)

M = TypeVar("M")
Handler: TypeAlias = Callable[[M], object]
"""An event handler: called with the event's model; may be a coroutine function."""
RawHandler: TypeAlias = Callable[[str, Any], object]
Responder: TypeAlias = Callable[[Any], Awaitable[Any]]
TokenProvider: TypeAlias = Callable[[], "str | Awaitable[str]"]
Unsubscribe: TypeAlias = Callable[[], None]

# Refusals that another attempt cannot fix: the reconnect loop gives up at once.
PERMANENT_REFUSALS = frozenset({"forbidden", "project_not_found", "invalid_namespace"})


class ConnectionState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    GAVE_UP = "gave_up"
    CLOSED = "closed"


@dataclass(frozen=True)
class StateChange:
    """What `on_state` listeners receive. `attempt`/`delay` (seconds) are set while reconnecting, `reason`
    on a disconnect, `error` when an attempt failed or the client gave up.

    `recovered` is set on `connected`: True when every namespace got its session back, so nothing was
    missed. False after a reconnect means events may have been lost while disconnected: the client has
    re-joined and re-subscribed, and the caller should reload a snapshot (`get_snapshot`, `get_history`).
    `PortalClient.recovered(namespace)` tells which namespaces were recovered."""

    state: ConnectionState
    attempt: int = 0
    delay: float | None = None
    reason: str | None = None
    error: PortalError | None = None
    recovered: bool = False


class PortalClient:
    """An asyncio client of the portal.

    `token` is a token string or a callable (sync or async) returning one; it is called on every connect
    and reconnect, so a refreshed token is used. `PortalClient.login()` passes a `Session` that refreshes
    itself. `transports` as python-socketio's (`["websocket"]`, `["polling"]`, default: polling then
    upgrade). `backoff` drives reconnection; `reconnect=False` turns it off. `recovery` (on by default)
    asks the server for connection state recovery (decisions §7): after a dropped connection, missed
    events are replayed in order before new ones, and joins and subscriptions are kept.

    Events are delivered to handlers one at a time, in the order they arrived. A handler registered with
    `on()` gets the event's pydantic model from `agent_portal.protocol`; a payload that fails the model is
    logged (warning) and NOT given to typed handlers, only to `on_any()` handlers, which always receive the
    raw payload — so a typed handler never sees an object that is not its type.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenProvider | None = None,
        transports: list[str] | None = None,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        recovery: bool = True,
        connect_timeout: float = 5.0,
        call_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = token if isinstance(token, Session) else None
        self._token = token
        self.transports = transports
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.namespaces: tuple[str, ...] = ()
        self.state = ConnectionState.IDLE
        self._sio: Any = None
        self._handlers: dict[tuple[str, str], list[Callable[[Any], object]]] = {}
        self._raw: dict[str, list[RawHandler]] = {}
        self._state_listeners: list[Callable[[StateChange], object]] = []
        self._responders: dict[tuple[str, str], Responder] = {}
        self._joins: dict[tuple[str, str], dict[str, Any]] = {}
        self._subscriptions: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._pending: set[asyncio.Future[Any]] = set()
        self._queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._refusals: dict[str, ConnectRefused] = {}
        self._recovery = Recovery() if recovery else None

    @classmethod
    async def login(cls, base_url: str, username: str, password: str, **options: Any) -> PortalClient:
        """Logs in over HTTP and returns a client whose token refreshes itself before it expires."""
        session = await Session.login(base_url.rstrip("/"), username, password)
        return cls(base_url, token=session, **options)

    # --- lifecycle -----------------------------------------------------------------------------

    async def connect(self, *namespaces: str) -> None:
        """Connects these namespaces over one Engine.IO session (or, with none given, the ones of the last
        connect). Raises `ConnectRefused` with the server's code if any namespace is refused, and
        `NetworkError` if the server cannot be reached."""
        reconnecting = self._reconnector is not None and not self._reconnector.done()
        if reconnecting or (self._sio is not None and self._sio.connected):
            raise RuntimeError("already connected or reconnecting; close() first")
        if namespaces:
            self.namespaces = tuple(dict.fromkeys(namespaces))
        if not self.namespaces:
            raise ValueError("connect() needs at least one namespace")
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="portal-client-dispatch")
        self._set_state(StateChange(ConnectionState.CONNECTING))
        try:
            await self._open()
        except Exception as exc:
            self._set_state(StateChange(ConnectionState.DISCONNECTED, error=_as_portal_error(exc)))
            raise
        self.backoff.reset()
        self._set_state(StateChange(ConnectionState.CONNECTED))

    async def close(self) -> None:
        """Disconnects every namespace and stops reconnecting; pending calls fail with `NetworkError`."""
        self._set_state(StateChange(ConnectionState.CLOSED))
        tasks = [t for t in (self._reconnector, self._dispatcher) if t is not None]
        self._reconnector = self._dispatcher = None
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await self._drop()
        self._fail_pending("closed", "The client was closed")
        if self._recovery is not None:
            self._recovery.forget()  # a deliberate close ends the sessions; the next connect starts anew
        for task in tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __aenter__(self) -> PortalClient:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    def recovered(self, namespace: str) -> bool:
        """True when the last connect of `namespace` resumed its session (the same pid came back)."""
        return self._recovery is not None and self._recovery.recovered(namespace)

    # --- events --------------------------------------------------------------------------------

    @overload
    def on(
        self, namespace: str, event: Literal["joined_project"], handler: Handler[s.JoinedProjectEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["user_joined"], handler: Handler[s.UserJoinedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["user_left"], handler: Handler[s.UserLeftEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["authenticated"], handler: Handler[s.AuthenticatedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self,
        namespace: str,
        event: Literal["authentication_failed"],
        handler: Handler[s.AuthenticationFailedEvent],
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["validation_error"], handler: Handler[s.ValidationErrorEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["rate_limited"], handler: Handler[s.RateLimitedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["error"], handler: Handler[WebSocketError]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["state_change"], handler: Handler[s.StateChangeEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["task_update"], handler: Handler[s.TaskUpdateEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["approval_request"], handler: Handler[s.ApprovalRequestEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["approval_resolved"], handler: Handler[s.ApprovalResolvedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["sprint_progress"], handler: Handler[s.SprintProgressEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["backlog_updated"], handler: Handler[s.BacklogUpdatedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["agent_activity"], handler: Handler[s.AgentActivityEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["tdd_cycle_started"], handler: Handler[s.TDDCycleStartedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["tdd_state_change"], handler: Handler[s.TDDStateChangeEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["test_output"], handler: Handler[s.TestOutputEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["system_metrics"], handler: Handler[s.SystemMetricsEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["message_received"], handler: Handler[s.MessageReceivedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["command_result"], handler: Handler[s.CommandResultEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["typing_start", "typing_stop"], handler: Handler[s.TypingEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["thread_created"], handler: Handler[s.ThreadCreatedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["thread_updated"], handler: Handler[s.ThreadUpdatedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["reaction_updated"], handler: Handler[s.ReactionUpdatedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["config_changed"], handler: Handler[s.ConfigChangedEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["user_action"], handler: Handler[s.UserActionEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, namespace: str, event: Literal["command"], handler: Handler[s.OrchestratorCommandEvent]
    ) -> Unsubscribe: ...
    @overload
    def on(self, namespace: str, event: str, handler: Handler[Any]) -> Unsubscribe: ...
    def on(self, namespace: str, event: str, handler: Handler[Any]) -> Unsubscribe:
        """Calls `handler(model)` for each `event` on `namespace`; returns a function that unsubscribes.
        Events without a model in `SERVER_EVENTS` are delivered raw."""
        handlers = self._handlers.setdefault((namespace, event), [])
        handlers.append(handler)
        return lambda: handlers.remove(handler) if handler in handlers else None

    def on_any(self, namespace: str, handler: RawHandler) -> Unsubscribe:
        """Calls `handler(event, payload)` with the raw payload of every event on `namespace`."""
        handlers = self._raw.setdefault(namespace, [])
        handlers.append(handler)
        return lambda: handlers.remove(handler) if handler in handlers else None

    def on_state(self, listener: Callable[[StateChange], object]) -> Unsubscribe:
        """Calls `listener(StateChange)` on connected, disconnected, reconnecting (per attempt), gave_up."""
        self._state_listeners.append(listener)
        return lambda: self._state_listeners.remove(listener) if listener in self._state_listeners else None

    def respond(self, namespace: str, event: str, responder: Responder) -> None:
        """Answers a server event sent with an ack: `await responder(raw_payload)` becomes the ack."""
        self._responders[(namespace, event)] = responder

    # --- requests ------------------------------------------------------------------------------

    async def call(
        self,
        namespace: str,
        event: str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (python-socketio's call() has the same)
    ) -> Any:
        """Emits `event` with an ack and returns the ack's `data`; raises the `PortalError` subclass for
        the server's error (or `NetworkError` on timeout / a dropped connection). Models are sent as their
        wire form; dicts are sent as they are, for the server to validate."""
        data = _wire(payload)
        reply = await self._request(namespace, event, data, self.call_timeout if timeout is None else timeout)
        try:
            ack = Ack.model_validate(reply)
        except ValidationError:
            raise ServerError(
                local_error("server", "bad_ack", f"Unreadable reply to {event}", reply)
            ) from None
        if not ack.ok:
            error = ack.error or local_error("server", "internal", f"{event} failed")
            raise from_wire(error)
        self._remember(namespace, event, data or {})
        return ack.data

    async def emit(
        self, namespace: str, event: str, payload: BaseModel | Mapping[str, Any] | None = None
    ) -> None:
        """Emits without an ack; errors come back only as error events (`on(ns, "error", ...)`)."""
        sio = self._connected_sio(namespace)
        await sio.emit(event, _wire(payload), namespace=namespace)

    async def join_project(self, project_name: str, namespace: str = "/portal") -> s.JoinedProjectEvent:
        """Joins a project (re-joined after every reconnect until `leave_project`)."""
        data = await self.call(namespace, "join_project", {"project_name": project_name})
        return s.JoinedProjectEvent.model_validate(data)

    async def leave_project(self, project_name: str, namespace: str = "/portal") -> Any:
        return await self.call(namespace, "leave_project", {"project_name": project_name})

    async def subscribe(self, namespace: str, events: list[str], project_name: str | None = None) -> Any:
        """Narrows the stream to `events` (re-applied after every reconnect)."""
        payload: dict[str, Any] = {"events": events}
        if project_name is not None:
            payload["project_name"] = project_name
        return await self.call(namespace, "subscribe_to_events", payload)

    # --- internals: connecting -----------------------------------------------------------------

    async def _open(self) -> None:
        token = await self._resolve_token()
        sio = (
            socketio.AsyncClient(reconnection=False)
            if self._recovery is None
            else RecoveringAsyncClient(self._recovery, reconnection=False)
        )

        # python-socketio awaits only coroutine functions, so these are `async def`, not lambdas.
        async def on_event(event: str, namespace: str, *args: Any) -> Any:
            return await self._on_event(sio, event, namespace, args)

        async def on_disconnect(namespace: str, reason: Any = None) -> None:
            self._on_disconnect(sio, namespace, reason)

        async def on_connect_error(namespace: str, data: Any = None) -> None:
            self._on_refused(namespace, data)

        sio.on("*", on_event, namespace="*")
        sio.on("disconnect", on_disconnect, namespace="*")
        sio.on("connect_error", on_connect_error, namespace="*")
        self._refusals = {}
        self._sio = sio
        try:
            await sio.connect(
                self.base_url,
                auth={"token": token} if token else None,
                namespaces=list(self.namespaces),
                transports=self.transports,
                wait_timeout=self.connect_timeout,
            )
        except (socketio.exceptions.ConnectionError, ValueError) as exc:
            self._sio = None
            with contextlib.suppress(Exception):
                await sio.disconnect()
            refused = [self._refusals[n] for n in self.namespaces if n in self._refusals]
            if refused:
                raise refused[0] from None
            raise NetworkError(
                local_error("network", "connect_failed", str(exc) or "Cannot connect")
            ) from None

    async def _resolve_token(self) -> str | None:
        if self._token is None or isinstance(self._token, str):
            return self._token
        token = self._token()
        return await token if inspect.isawaitable(token) else token

    def _on_refused(self, namespace: str, data: Any) -> None:
        # The server's CONNECT_ERROR payload is {message, data: {message, code}} (decisions §2).
        inner = data.get("data") if isinstance(data, dict) else None
        source = inner if isinstance(inner, dict) else data if isinstance(data, dict) else {}
        code = str(source.get("code") or "connect_error")
        message = str(source.get("message") or data or "Connection refused")
        if isinstance(data, dict):
            self._refusals[namespace] = ConnectRefused(code, message, namespace)

    def _on_disconnect(self, sio: Any, namespace: str, reason: Any) -> None:
        if sio is not self._sio or self.state in (ConnectionState.CLOSED, ConnectionState.CONNECTING):
            return
        self._fail_pending("disconnected", f"Disconnected from {namespace}")
        if self._reconnector is not None and not self._reconnector.done():
            return  # the reconnect loop sees its own attempt fail
        log.info("disconnected from %s (%s)", namespace, reason)
        self._set_state(StateChange(ConnectionState.DISCONNECTED, reason=str(reason)))
        if self.reconnect:
            self._reconnector = asyncio.create_task(self._reconnect(sio), name="portal-client-reconnect")

    async def _reconnect(self, old: Any) -> None:
        with contextlib.suppress(Exception):
            await old.disconnect()  # one namespace may be gone while others are still up
        last: PortalError | None = None
        while self.backoff.should_retry():
            delay = self.backoff.next_delay()
            self.backoff.record_attempt()
            self._set_state(
                StateChange(ConnectionState.RECONNECTING, self.backoff.attempts, delay, error=last)
            )
            await asyncio.sleep(delay)
            try:
                try:
                    await self._open()
                    await self._restore()
                except BaseException:
                    await self._drop()  # connected but the re-join failed: the next attempt starts clean
                    raise
            except NetworkError as exc:
                last = exc
            except ConnectRefused as exc:
                last = exc
                if exc.code in PERMANENT_REFUSALS:
                    break
            except PortalError as exc:
                # e.g. the token provider could not refresh: another attempt would fail the same way
                last = exc
                break
            except Exception:
                log.exception("reconnect attempt %d failed", self.backoff.attempts)
            else:
                self.backoff.reset()
                recovered = all(self.recovered(n) for n in self.namespaces)
                self._set_state(StateChange(ConnectionState.CONNECTED, recovered=recovered))
                return
        self._set_state(StateChange(ConnectionState.GAVE_UP, self.backoff.attempts, error=last))

    async def _drop(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            with contextlib.suppress(Exception):
                await sio.disconnect()

    async def _restore(self) -> None:
        # A recovered namespace has them already: joining again would be a second `joined_project`.
        for (namespace, _), payload in list(self._joins.items()):
            if not self.recovered(namespace):
                await self._restore_one(namespace, "join_project", payload)
        for (namespace, _), payload in list(self._subscriptions.items()):
            if not self.recovered(namespace):
                await self._restore_one(namespace, "subscribe_to_events", payload)

    async def _restore_one(self, namespace: str, event: str, payload: dict[str, Any]) -> None:
        try:
            await self.call(namespace, event, payload)
        except NetworkError:
            raise
        except PortalError as exc:
            # The project may be gone or the user's access narrowed: report and keep the rest.
            log.warning("could not restore %s %s on %s: %s", event, payload, namespace, exc)

    def _remember(self, namespace: str, event: str, data: Mapping[str, Any]) -> None:
        project = data.get("project_name")
        if event == "join_project" and isinstance(project, str):
            self._joins[(namespace, project)] = {"project_name": project}
        elif event == "leave_project" and isinstance(project, str):
            self._joins.pop((namespace, project), None)
            self._subscriptions.pop((namespace, project), None)
        elif event == "subscribe_to_events":
            self._subscriptions[(namespace, project if isinstance(project, str) else None)] = dict(data)

    def _set_state(self, change: StateChange) -> None:
        self.state = change.state
        for listener in list(self._state_listeners):
            try:
                listener(change)
            except Exception:
                log.exception("state listener failed")

    # --- internals: requests -------------------------------------------------------------------

    def _connected_sio(self, namespace: str) -> Any:
        sio = self._sio
        if sio is None or namespace not in sio.namespaces:
            raise NetworkError(local_error("network", "not_connected", f"{namespace} is not connected"))
        return sio

    async def _request(self, namespace: str, event: str, data: Any, seconds: float) -> Any:
        sio = self._connected_sio(namespace)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*args: Any) -> None:
            if not reply.done():
                reply.set_result(args[0] if len(args) == 1 else list(args) if args else None)

        self._pending.add(reply)
        try:
            await sio.emit(event, data, namespace=namespace, callback=on_ack)
            return await asyncio.wait_for(reply, seconds)
        except TimeoutError:
            raise NetworkError(
                local_error("network", "timeout", f"No reply to {event} in {seconds} s")
            ) from None
        except socketio.exceptions.SocketIOError as exc:
            raise NetworkError(local_error("network", "not_connected", str(exc))) from None
        finally:
            self._pending.discard(reply)

    def _fail_pending(self, code: str, message: str) -> None:
        for future in list(self._pending):
            if not future.done():
                future.set_exception(NetworkError(local_error("network", code, message)))
        self._pending.clear()

    # --- internals: delivery -------------------------------------------------------------------

    async def _on_event(self, sio: Any, event: str, namespace: str, args: tuple[Any, ...]) -> Any:
        if sio is not self._sio:
            return None
        if self._recovery is not None:
            args = self._recovery.strip(namespace, args)
        payload = args[0] if len(args) == 1 else list(args) if args else None
        responder = self._responders.get((namespace, event))
        if responder is not None:
            return await responder(payload)
        # Queued before the first await, so handlers see events in the order they arrived.
        self._queue.put_nowait((namespace, event, payload))
        return None

    async def _dispatch(self) -> None:
        while True:
            namespace, event, payload = await self._queue.get()
            for raw in list(self._raw.get(namespace, [])):
                await _invoke(raw, event, payload)
            handlers = list(self._handlers.get((namespace, event), []))
            if not handlers:
                continue
            value = payload
            model = SERVER_EVENTS.get(event)
            if model is not None:
                try:
                    value = model.model_validate(payload)
                except ValidationError as exc:
                    log.warning(
                        "dropped %s on %s: payload does not match %s: %s",
                        event,
                        namespace,
                        model.__name__,
                        exc,
                    )
                    continue
            for handler in handlers:
                await _invoke(handler, value)


async def _invoke(handler: Callable[..., object], *args: Any) -> None:
    try:
        result = handler(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("event handler %r failed", handler)


def _as_portal_error(exc: Exception) -> PortalError | None:
    return exc if isinstance(exc, PortalError) else None


def _wire(payload: BaseModel | Mapping[str, Any] | None) -> Any:
    if payload is None:
        return None
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json", exclude_none=True)
    return dict(payload)
