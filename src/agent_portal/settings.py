"""Settings: one frozen object built at the edge (CLI and environment) and passed down."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_CORS_ORIGINS = ("http://localhost:5173",)


@dataclass(frozen=True)
class SecurityLimits:
    """Abuse limits (decisions §8); the live values are the `security` config, these are the defaults."""

    events_per_second: int = 10
    events_per_minute: int = 100
    violations_before_ban: int = 3
    violation_window_seconds: int = 600
    ban_seconds: int = 300
    max_connections: int = 5
    token_ttl_seconds: int = 8 * 3600


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".data")
    database_url: str | None = None
    redis_url: str | None = None
    # The key prefix of this cluster's shared state in Redis (several clusters may share one Redis).
    cluster_name: str = "agent-portal"
    secret: str | None = None
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    public_url: str | None = None
    ping_interval: float = 25.0
    ping_timeout: float = 60.0
    max_message_bytes: int = 1024 * 1024
    auth_grace_seconds: float = 10.0
    approval_timeout_seconds: int = 30 * 60
    typing_lapse_seconds: float = 6.0
    metrics_interval_seconds: float = 5.0
    recovery_window_seconds: float = 120.0
    max_attachment_bytes: int = 10 * 1024 * 1024
    security: SecurityLimits = field(default_factory=SecurityLimits)
    static_dir: Path | None = None
    demo_step_delay: float = 0.4
    log_json: bool = True

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'agent-portal.db').resolve()}"

    @property
    def own_origin(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def allowed_origins(self) -> list[str]:
        origins = [self.own_origin, *self.cors_origins]
        if self.host in ("127.0.0.1", "localhost"):
            # A browser may call the same server by either loopback name.
            origins += [f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"]
        return sorted(set(origins))

    def with_port(self, port: int) -> Settings:
        return replace(self, port=port)


def load_secret(settings: Settings) -> str:
    """The token secret: from the settings/env, else created once in the data dir (decisions §2)."""
    if settings.secret:
        return settings.secret
    path = settings.data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Write with owner-only permissions: the secret signs every token.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
