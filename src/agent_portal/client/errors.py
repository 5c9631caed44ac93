"""What the client raises: one exception per kind of failure, each carrying the wire's `WebSocketError`.

Errors the server sends (`{ok: false, error}` acks, connect refusals) keep the server's type, code,
message and details. Failures the client detects itself (timeouts, a dropped connection, a payload that
fails local validation) are described with the same `WebSocketError` shape, so callers handle one form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agent_portal.protocol.common import ErrorType, WebSocketError


class PortalError(Exception):
    """Base of every client error; `error` is the `WebSocketError` the server sent or the client built."""

    def __init__(self, error: WebSocketError) -> None:
        super().__init__(f"{error.code or error.type}: {error.message}")
        self.error = error

    @property
    def type(self) -> ErrorType:
        return self.error.type

    @property
    def code(self) -> str | None:
        return self.error.code

    @property
    def message(self) -> str:
        return self.error.message

    @property
    def details(self) -> Any:
        return self.error.details


class ConnectRefused(PortalError):
    """The server turned a namespace away at connect (`invalid_token`, `token_expired`, `forbidden`,
    `project_not_found`, `too_many_connections`, `banned`, `invalid_namespace`)."""

    def __init__(self, code: str, message: str, namespace: str | None = None) -> None:
        super().__init__(local_error("connection", code, message, {"namespace": namespace}))
        self.namespace = namespace


class NetworkError(PortalError):
    """No answer: the server is unreachable, the connection dropped, or a call timed out."""


class AuthenticationFailed(PortalError):
    """Who you are is unknown or unproven: `invalid_token`, `token_expired`, `invalid_credentials`, ..."""


class Forbidden(PortalError):
    """Authenticated, but not allowed to do this (`forbidden`)."""


class NotFound(PortalError):
    """The project, message, thread or approval named does not exist (`project_not_found`, ...)."""


class ValidationFailed(PortalError):
    """The payload broke the event's schema or a rule; `details` lists `{path, message}`."""


class UnknownEvent(PortalError):
    """The namespace has no such client event (`unknown_event`)."""


class RateLimited(PortalError):
    """Too many events (`rate_limited`) or banned for abuse (`banned`)."""

    @property
    def retry_after(self) -> int:
        """Milliseconds until an event would be accepted (decisions §1, §8)."""
        details = self.details
        value = details.get("retry_after") if isinstance(details, dict) else None
        return int(value) if isinstance(value, int | float) else 0

    @property
    def banned(self) -> bool:
        return self.code == "banned"


class ServerError(PortalError):
    """The server failed (`internal`, `unavailable`, ...) or answered something the client cannot read."""


def local_error(type_: ErrorType, code: str, message: str, details: Any = None) -> WebSocketError:
    return WebSocketError(
        type=type_, code=code, message=message, details=details, timestamp=datetime.now(UTC)
    )


def from_wire(error: WebSocketError) -> PortalError:
    """Picks the exception class for an error the server sent; the one mapping of wire errors."""
    code = error.code or ""
    if code in ("rate_limited", "banned"):
        return RateLimited(error)
    if code == "unknown_event":
        return UnknownEvent(error)
    if code == "forbidden":
        return Forbidden(error)
    if code.endswith("not_found"):
        return NotFound(error)
    by_type: dict[ErrorType, type[PortalError]] = {
        "authentication": AuthenticationFailed,
        "validation": ValidationFailed,
        "server": ServerError,
        "network": NetworkError,
        "connection": NetworkError,
    }
    return by_type[error.type](error)


def validation_failed(message: str, exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """A local schema failure, in the shape of the server's `validation_error` details."""
    details = [
        {"path": prefix + (".".join(str(p) for p in item["loc"]) or "(root)"), "message": item["msg"]}
        for item in exc.errors(include_url=False, include_input=False)
    ]
    return ValidationFailed(local_error("validation", "validation_failed", message, details))
