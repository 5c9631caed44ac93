"""Tokens over HTTP: `POST /api/auth/login` and `/api/auth/refresh` (decisions §2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from agent_portal.client.errors import (
    AuthenticationFailed,
    NetworkError,
    PortalError,
    RateLimited,
    ServerError,
    ValidationFailed,
    local_error,
)

HTTP_TIMEOUT = 10.0


@dataclass
class Session:
    """A logged-in user's token; calling it returns a token, refreshed first when it is about to expire.

    Pass it (or any callable returning a token) as `PortalClient(token=...)`: it is asked for a token on
    every connect and reconnect.
    """

    base_url: str
    token: str
    user_id: str
    role: str
    permissions: list[str]
    project_access: list[str]
    expires_at: datetime
    refresh_margin: timedelta = timedelta(seconds=60)

    @classmethod
    async def login(cls, base_url: str, username: str, password: str) -> Session:
        body = await _post(base_url, "/api/auth/login", {"username": username, "password": password})
        return cls._from_body(base_url, body)

    async def refresh(self) -> str:
        headers = {"authorization": f"Bearer {self.token}"}
        fresh = self._from_body(self.base_url, await _post(self.base_url, "/api/auth/refresh", None, headers))
        self.token, self.expires_at = fresh.token, fresh.expires_at
        self.permissions, self.project_access = fresh.permissions, fresh.project_access
        return self.token

    async def __call__(self) -> str:
        if datetime.now(UTC) + self.refresh_margin >= self.expires_at:
            return await self.refresh()
        return self.token

    @classmethod
    def _from_body(cls, base_url: str, body: dict[str, Any]) -> Session:
        try:
            return cls(
                base_url=base_url,
                token=str(body["token"]),
                user_id=str(body["user_id"]),
                role=str(body.get("role", "")),
                permissions=list(body.get("permissions", [])),
                project_access=list(body.get("project_access", [])),
                expires_at=datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00")),
            )
        except (KeyError, TypeError, ValueError):
            raise ServerError(local_error("server", "bad_response", "Unreadable token response")) from None


async def _post(
    base_url: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT) as http:
            response = await http.post(path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise NetworkError(local_error("network", "unreachable", f"{path}: {exc}")) from exc
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and isinstance(payload, dict):
        return payload
    raise _http_error(response.status_code, payload)


def _http_error(status: int, payload: Any) -> PortalError:
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or f"HTTP {status}")
    if status == 429:
        return RateLimited(
            local_error("validation", code, message, {"retry_after": error.get("retry_after", 0)})
        )
    if status == 401:
        return AuthenticationFailed(local_error("authentication", code, message))
    if status in (400, 413):
        return ValidationFailed(local_error("validation", code, message))
    return ServerError(local_error("server", code, message))
