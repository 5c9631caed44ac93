"""One small error hierarchy with machine codes; `gateway.base` maps it to the wire in one place."""

from __future__ import annotations

from typing import Any

from agent_portal.protocol.common import ErrorType


class PortalError(Exception):
    type: ErrorType = "server"
    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class AuthenticationError(PortalError):
    """Who you are is unknown or unproven: invalid_token, token_expired, not_authenticated, user_mismatch."""

    type: ErrorType = "authentication"
    code = "invalid_token"


class ForbiddenError(PortalError):
    type: ErrorType = "authentication"
    code = "forbidden"


class NotFoundError(PortalError):
    type: ErrorType = "validation"
    code = "not_found"


class ProjectNotFoundError(NotFoundError):
    code = "project_not_found"

    def __init__(self, project_name: str) -> None:
        super().__init__(f"Project not found: {project_name}", details={"project_name": project_name})


class ValidationFailed(PortalError):
    """Input broke a schema or a rule; `details` is a list of {path, message}."""

    type: ErrorType = "validation"
    code = "validation_failed"


class UnknownEventError(PortalError):
    type: ErrorType = "validation"
    code = "unknown_event"


class ConflictError(PortalError):
    type: ErrorType = "validation"
    code = "conflict"


class RateLimitedError(PortalError):
    type: ErrorType = "validation"
    code = "rate_limited"

    def __init__(self, retry_after_ms: int, *, banned: bool = False) -> None:
        super().__init__("Rate limit exceeded", code="banned" if banned else "rate_limited")
        self.retry_after_ms = retry_after_ms


class ConnectionRefused(PortalError):
    """A connect that is turned away: too_many_connections, banned, ..."""

    type: ErrorType = "connection"
    code = "connection_refused"


class UnavailableError(PortalError):
    type: ErrorType = "server"
    code = "unavailable"
