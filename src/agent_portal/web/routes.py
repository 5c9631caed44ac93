"""HTTP: health, readiness, metrics, login, attachments, and the static portal (decisions §2, §5, §9)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent_portal.auth.policy import Permission, Principal, can
from agent_portal.errors import AuthenticationError, PortalError
from agent_portal.protocol.common import FileAttachment, format_timestamp
from agent_portal.services.container import Services
from agent_portal.storage.store import AttachmentRecord

MAX_JSON_BODY = 64 * 1024


class BodyTooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            # Stop reading at once: a client that lies about (or omits) its length gets no more memory.
            raise BodyTooLarge
    return bytes(chunks)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


class Web:
    def __init__(self, services: Services) -> None:
        self.s = services

    def _principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not token:
            raise AuthenticationError("Not authenticated", code="not_authenticated")
        return self.s.tokens.verify(token)

    async def healthz(self, _request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok"}
        if self.s.cluster is not None:
            body["node"] = self.s.cluster.id
            body["orchestrator"] = self.s.runs_orchestrator()
        return JSONResponse(body)

    async def readyz(self, _request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await self.s.store.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = type(exc).__name__
        if self.s.cluster is not None:
            checks["redis"] = "ok" if await self.s.cluster.ready() else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
        )

    async def metrics(self, _request: Request) -> Response:
        return PlainTextResponse(self.s.metrics.render(), media_type="text/plain; version=0.0.4")

    async def login(self, request: Request) -> Response:
        ip = request.client.host if request.client else "?"
        verdict = await self.s.login_limiter.hit(ip)
        if not verdict.allowed:
            return _error(429, "rate_limited", "Rate limit exceeded", retry_after=verdict.retry_after_ms)
        try:
            body = json.loads(await _read_capped(request, MAX_JSON_BODY))
        except BodyTooLarge:
            return _error(413, "payload_too_large", "Request body too large")
        except ValueError:
            return _error(400, "validation_failed", "Body must be JSON {username, password}")
        username, password = (
            (body.get("username"), body.get("password")) if isinstance(body, dict) else (None, None)
        )
        if not isinstance(username, str) or not isinstance(password, str) or len(password) > 1024:
            return _error(400, "validation_failed", "Body must be JSON {username, password}")
        user = await self.s.store.get_user_by_name(username[:64])
        ok = self.s.passwords.verify(user.password_hash if user else None, password)
        agent = request.headers.get("user-agent", "")
        if not ok or user is None:
            await self.s.audit.record(
                username[:64],
                "login",
                "auth",
                success=False,
                ip=ip,
                user_agent=agent,
                error="invalid_credentials",
            )
            return _error(401, "invalid_credentials", "Invalid username or password")
        await self.s.audit.record(user.id, "login", "auth", success=True, ip=ip, user_agent=agent)
        return JSONResponse(self._token_body(user.id, user.role, user.projects))

    def _token_body(self, user_id: str, role: Any, projects: list[str]) -> dict[str, Any]:
        issued = self.s.tokens.issue(user_id, role, projects, self.s.config.security.token_ttl_seconds)
        principal = self.s.tokens.verify(issued.token)
        return {
            "token": issued.token,
            "user_id": user_id,
            "role": role,
            "permissions": principal.permission_names,
            "project_access": sorted(principal.projects),
            "expires_at": format_timestamp(issued.expires_at),
        }

    async def refresh(self, request: Request) -> Response:
        principal = self._principal(request)
        user = await self.s.store.get_user(principal.user_id)
        if user is None:
            # Tokens from `agent-portal token` may name users that do not exist; they refresh as they are.
            return JSONResponse(
                self._token_body(principal.user_id, principal.role, sorted(principal.projects))
            )
        return JSONResponse(self._token_body(user.id, user.role, user.projects))

    async def projects(self, request: Request) -> Response:
        principal = self._principal(request)
        out = []
        for record in await self.s.store.list_projects():
            if can(principal, Permission.PROJECTS_READ, record.name):
                out.append(
                    {
                        "name": record.name,
                        "external": record.external,
                        "current_state": await self.s.router.current_state(record.name),
                        "active_users": await self.s.presence.count(record.name),
                        "last_activity": format_timestamp(record.last_activity),
                    }
                )
        return JSONResponse({"projects": out})

    async def upload(self, request: Request) -> Response:
        principal = self._principal(request)
        project = request.path_params["project"]
        if (
            not can(principal, Permission.CHAT_WRITE, project)
            or await self.s.store.get_project(project) is None
        ):
            return _error(403, "forbidden", "Not allowed to upload to this project")
        limit = self.s.settings.max_attachment_bytes
        name = request.headers.get("x-file-name") or request.query_params.get("name") or "attachment"
        media_type = request.headers.get("content-type", "application/octet-stream").split(";")[0]
        try:
            content = await _read_capped(request, limit)
        except BodyTooLarge:
            return _error(413, "payload_too_large", f"Attachments are limited to {limit} bytes")
        if not content:
            return _error(400, "validation_failed", "Empty upload")
        record = AttachmentRecord(
            id=str(uuid.uuid4()),
            project=project,
            name=Path(name).name[:255] or "attachment",
            type=media_type[:255],
            size=len(content),
            uploaded_by=principal.user_id,
            created_at=self.s.clock.now(),
            content=content,
        )
        await self.s.store.add_attachment(record)
        attachment = FileAttachment(
            id=record.id,
            name=record.name,
            size=record.size,
            type=record.type,
            url=f"/api/projects/{project}/attachments/{record.id}",
        )
        return JSONResponse(attachment.wire(), status_code=201)

    async def download(self, request: Request) -> Response:
        principal = self._principal(request)
        project = request.path_params["project"]
        record = await self.s.store.get_attachment(request.path_params["attachment_id"])
        if (
            record is None
            or record.project != project
            or not can(principal, Permission.PROJECTS_READ, project)
        ):
            return _error(404, "not_found", "No such attachment")
        disposition = f'attachment; filename="{record.name.replace(chr(34), "")}"'
        return Response(
            record.content,
            media_type=record.type,
            headers={"content-disposition": disposition, "x-content-type-options": "nosniff"},
        )


def build_http_app(services: Services, lifespan: Any) -> Starlette:
    web = Web(services)

    async def on_portal_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PortalError)
        status = 401 if isinstance(exc, AuthenticationError) else 400
        return _error(status, exc.code, exc.message)

    routes: list[Route | Mount] = [
        Route("/healthz", web.healthz),
        Route("/readyz", web.readyz),
        Route("/metrics", web.metrics),
        Route("/api/auth/login", web.login, methods=["POST"]),
        Route("/api/auth/refresh", web.refresh, methods=["POST"]),
        Route("/api/projects", web.projects),
        Route("/api/projects/{project}/attachments", web.upload, methods=["POST"]),
        Route("/api/projects/{project}/attachments/{attachment_id}", web.download),
    ]
    static_dir = services.settings.static_dir
    if static_dir is not None and (static_dir / "index.html").exists():
        routes.append(Mount("/", StaticFiles(directory=static_dir, html=True)))
    else:

        async def placeholder(_request: Request) -> Response:
            return HTMLResponse(
                "<!doctype html><title>agent-portal</title><h1>agent-portal</h1>"
                "<p>The server is running, but the web portal is not built. Run <code>scripts/serve</code>.</p>"
            )

        routes.append(Route("/", placeholder))
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={PortalError: on_portal_error})
