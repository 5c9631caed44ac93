"""The external-orchestrator role (decisions §6): publish project and monitoring events on `/orchestrator`,
and answer the `command` events the portal sends for the projects it serves."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar, overload

from pydantic import BaseModel, ValidationError

from agent_portal.client.errors import ValidationFailed, local_error, validation_failed
from agent_portal.client.portal import PortalClient
from agent_portal.protocol.client_events import CommandReply
from agent_portal.protocol.registry import PUBLISHABLE_EVENTS
from agent_portal.protocol.server_events import OrchestratorCommandEvent

log = logging.getLogger(__name__)

ORCHESTRATOR = "/orchestrator"

Reply: TypeAlias = CommandReply | Mapping[str, Any]
CommandHandler: TypeAlias = Callable[[OrchestratorCommandEvent], Awaitable[Reply] | Reply]
H = TypeVar("H", bound=CommandHandler)


class OrchestratorClient(PortalClient):
    """A `PortalClient` that connects `/orchestrator` with a service token (role `orchestrator`).

    Register command handlers with `@client.on_command("/sprint plan")` (one command) or
    `@client.on_command` (every command without its own handler). A handler receives the
    `OrchestratorCommandEvent` and returns `{success, result?, error?}` (a `CommandReply` or a dict), which
    is the ack the portal turns into the chat's `command_result`. A handler that raises answers
    `{success: false, error: "Internal error in the orchestrator"}` and is logged here.
    """

    def __init__(self, base_url: str, **options: Any) -> None:
        super().__init__(base_url, **options)
        self._commands: dict[str, CommandHandler] = {}
        self._fallback: CommandHandler | None = None
        self.respond(ORCHESTRATOR, "command", self._answer)

    async def connect(self, *namespaces: str) -> None:
        """Connects `/orchestrator`, plus any other namespaces given (on the same Engine.IO session)."""
        if namespaces or not self.namespaces:
            namespaces = (ORCHESTRATOR, *namespaces)
        await super().connect(*namespaces)

    async def publish(self, event: str, data: BaseModel | Mapping[str, Any]) -> Any:
        """Publishes one event after checking it against the same model the server uses; a payload that
        fails raises `ValidationFailed` without anything being sent."""
        model = PUBLISHABLE_EVENTS.get(event)
        if model is None:
            known = ", ".join(sorted(PUBLISHABLE_EVENTS))
            raise ValidationFailed(
                local_error(
                    "validation",
                    "validation_failed",
                    f"Unknown event: {event}",
                    [{"path": "event", "message": f"one of {known}"}],
                )
            )
        if isinstance(data, BaseModel):
            if not isinstance(data, model):
                raise ValidationFailed(
                    local_error(
                        "validation",
                        "validation_failed",
                        f"{event} takes a {model.__name__}, not a {type(data).__name__}",
                    )
                )
            checked = data
        else:
            try:
                checked = model.model_validate(dict(data))
            except ValidationError as exc:
                raise validation_failed(f"Invalid data for {event}", exc, prefix="data.") from None
        payload = {"event": event, "data": checked.model_dump(mode="json", exclude_none=True)}
        return await self.call(ORCHESTRATOR, "publish", payload)

    @overload
    def on_command(self, command: H) -> H: ...
    @overload
    def on_command(self, command: str | None = None) -> Callable[[H], H]: ...
    def on_command(self, command: str | H | None = None) -> H | Callable[[H], H]:
        if callable(command):
            self._fallback = command
            return command

        def register(handler: H) -> H:
            if command is None:
                self._fallback = handler
            else:
                self._commands[command] = handler
            return handler

        return register

    async def _answer(self, payload: Any) -> dict[str, Any]:
        try:
            request = OrchestratorCommandEvent.model_validate(payload)
        except ValidationError as exc:
            log.warning("unreadable command from the portal: %s", exc)
            return {"success": False, "error": "The orchestrator could not read the command"}
        handler = self._commands.get(request.command, self._fallback)
        if handler is None:
            return {"success": False, "error": f"This orchestrator does not handle {request.command}"}
        try:
            result = handler(request)
            reply = await result if inspect.isawaitable(result) else result
            checked = reply if isinstance(reply, CommandReply) else CommandReply.model_validate(dict(reply))
        except Exception:
            log.exception("command handler failed for %s (%s)", request.command, request.request_id)
            return {"success": False, "error": "Internal error in the orchestrator"}
        return checked.model_dump(mode="json", exclude_none=True)
