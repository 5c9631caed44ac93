"""The command line of decisions §0: serve, token, user add, project add (and schema, for codegen)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_portal.settings import DEFAULT_CORS_ORIGINS, Settings

ROLES = ["admin", "member", "viewer", "orchestrator"]
PACKAGED_PORTAL = Path(__file__).parent / "web" / "static"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"AGENT_PORTAL_{name}", default)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default=_env("DATA_DIR", ".data"), help="where SQLite and the secret live"
    )
    parser.add_argument("--database-url", default=_env("DATABASE_URL"), help="SQLAlchemy async URL")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-portal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server, the embedded orchestrator and the portal")
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(_env("PORT", "8000") or 8000))
    _add_storage_options(serve)
    serve.add_argument(
        "--redis-url",
        default=_env("REDIS_URL"),
        help="run as one node of a cluster sharing this Redis (needs a PostgreSQL --database-url)",
    )
    serve.add_argument(
        "--cluster-name",
        default=_env("CLUSTER_NAME", "agent-portal"),
        help="the Redis key prefix of the cluster (nodes of one cluster share it)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        help="an origin allowed besides the server's own (repeatable; env: comma-separated)",
    )
    serve.add_argument("--public-url", default=_env("PUBLIC_URL"), help="the URL users reach the server at")
    serve.add_argument("--static-dir", default=_env("STATIC_DIR"), help="a built portal to serve at /")
    serve.add_argument(
        "--recovery-window",
        type=float,
        default=float(_env("RECOVERY_WINDOW", "120") or 120),
        help="seconds a dropped client may take to reconnect and be sent what it missed",
    )
    serve.add_argument("--text-logs", action="store_true", help="human-readable logs instead of JSON")

    token = sub.add_parser("token", help="print a signed access token")
    token.add_argument("--user", required=True)
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument(
        "--project", action="append", default=[], help="a project the token may see (repeatable)"
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    _add_storage_options(token)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    add_user = user.add_parser("add", help="create a user")
    add_user.add_argument("name")
    add_user.add_argument("--role", required=True, choices=["admin", "member", "viewer"])
    add_user.add_argument("--project", action="append", default=[])
    add_user.add_argument("--password-stdin", action="store_true")
    _add_storage_options(add_user)

    project = sub.add_parser("project", help="manage projects").add_subparsers(
        dest="project_command", required=True
    )
    add_project = project.add_parser("add", help="create a project")
    add_project.add_argument("name")
    add_project.add_argument("--path", default=None, help="the project's working directory")
    add_project.add_argument("--external", action="store_true", help="an external orchestrator serves it")
    _add_storage_options(add_project)

    sub.add_parser("schema", help="print the JSON Schema of every event")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    cors_env = _env("CORS_ORIGINS")
    cors = tuple(
        getattr(args, "cors_origin", None) or (cors_env.split(",") if cors_env else DEFAULT_CORS_ORIGINS)
    )
    static = getattr(args, "static_dir", None)
    return Settings(
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        data_dir=Path(args.data_dir),
        database_url=args.database_url,
        redis_url=getattr(args, "redis_url", None),
        cluster_name=getattr(args, "cluster_name", "agent-portal"),
        secret=_env("SECRET"),
        cors_origins=cors,
        public_url=getattr(args, "public_url", None),
        static_dir=Path(static) if static else (PACKAGED_PORTAL if PACKAGED_PORTAL.exists() else None),
        log_json=not getattr(args, "text_logs", False),
        recovery_window_seconds=getattr(args, "recovery_window", 120.0),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        from agent_portal.protocol.registry import json_schema

        print(json.dumps(json_schema(), indent=2, sort_keys=False))
        return 0
    settings = _settings(args)
    if args.command == "serve":
        if settings.redis_url and settings.resolved_database_url.startswith("sqlite"):
            print(
                "error: --redis-url needs a shared database; SQLite lives on one machine. "
                "Pass --database-url postgresql+asyncpg://...",
                file=sys.stderr,
            )
            return 2
        if settings.redis_url and (problem := asyncio.run(_redis_problem(settings.redis_url))):
            print(f"error: --redis-url: cannot reach Redis: {problem}", file=sys.stderr)
            return 2
        return asyncio.run(_serve(settings))
    if args.command == "token":
        from agent_portal.auth.tokens import TokenService
        from agent_portal.settings import load_secret

        issued = TokenService(load_secret(settings)).issue(args.user, args.role, args.project, args.ttl)
        print(issued.token)
        return 0
    if args.command == "user":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
        if len(password) < 8:
            print("error: the password needs at least 8 characters", file=sys.stderr)
            return 2
        return asyncio.run(_add_user(settings, args.name, args.role, args.project, password))
    if args.command == "project":
        path = str(Path(args.path).resolve()) if args.path else None
        return asyncio.run(_add_project(settings, args.name, path, args.external))
    return 2


async def _redis_problem(url: str) -> str | None:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    except (RedisError, OSError, ValueError) as exc:
        return str(exc)
    finally:
        await client.aclose()
    return None


async def _with_store(settings: Settings) -> Any:
    from agent_portal.storage import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await open_store(settings.resolved_database_url)


async def _add_user(settings: Settings, name: str, role: str, projects: list[str], password: str) -> int:
    from agent_portal.auth.passwords import PasswordService
    from agent_portal.errors import ConflictError
    from agent_portal.storage.store import UserRecord

    store = await _with_store(settings)
    try:
        record = UserRecord(name, name, role, projects, PasswordService().hash(password), datetime.now(UTC))
        await store.add_user(record)
    except ConflictError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"user {name} ({role}) created")
    return 0


async def _add_project(settings: Settings, name: str, path: str | None, external: bool) -> int:
    from agent_portal.errors import ConflictError
    from agent_portal.gateway.base import PROJECT_NAME
    from agent_portal.storage.store import ProjectRecord

    if not PROJECT_NAME.match(name):
        print("error: project names are 1-64 of A-Z a-z 0-9 . _ -", file=sys.stderr)
        return 2
    store = await _with_store(settings)
    now = datetime.now(UTC)
    resolved = path
    try:
        await store.add_project(ProjectRecord(name, resolved, external, now, now))
    except ConflictError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"project {name} created" + (" (external orchestrator)" if external else ""))
    return 0


async def first_start(app: Any, settings: Settings) -> str | None:
    """On a fresh data dir: an admin with a printed password, a demo project, and a login link."""
    from agent_portal.storage.store import ProjectRecord, UserRecord

    s = app.services
    if await s.store.count_users() > 0:
        return None
    password = secrets.token_urlsafe(12)
    now = datetime.now(UTC)
    await s.store.add_user(UserRecord("admin", "admin", "admin", ["*"], s.passwords.hash(password), now))
    if not await s.store.list_projects():
        await s.store.add_project(ProjectRecord("demo", None, False, now, now))
    return password


async def _serve(settings: Settings) -> int:
    import uvicorn

    from agent_portal import logs
    from agent_portal.app import create_app
    from agent_portal.gateway.wsproto import PortalHttpProtocol, PortalWebSocketProtocol
    from agent_portal.serving import PortalServer, tune_gc

    logs.configure(settings.log_json)
    tune_gc()
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then (gateway/wsproto.py)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]
    settings = settings.with_port(port)
    app = await create_app(settings)
    password = await first_start(app, settings)
    base = settings.public_url or f"http://{settings.host}:{port}"
    token = app.services.tokens.issue("admin", "admin", ["*"], 24 * 3600).token
    if password:
        print(
            f"\nagent-portal is ready. First start: created user 'admin' with password {password}", flush=True
        )
        print(f"Open the portal (logged in as admin for 24 h):\n\n    {base}/#token={token}\n", flush=True)
    else:
        print(f"\nagent-portal is ready at {base}/ (admin link: {base}/#token={token})\n", flush=True)
    config = uvicorn.Config(
        app.asgi,
        lifespan="on",
        log_level="warning",
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=None,  # Engine.IO runs its own heartbeat
        http=PortalHttpProtocol,  # lets go of upgraded connections (gateway/wsproto.py)
        ws=PortalWebSocketProtocol,  # frame-once broadcast writes (gateway/wsproto.py)
        timeout_graceful_shutdown=10,
    )
    server = PortalServer(config, app.sio)
    await server.serve(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
