"""Everything a request handler may need, built once per server in `app.build` and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from agent_portal.auth.passwords import PasswordService
from agent_portal.auth.tokens import TokenService
from agent_portal.clock import SystemClock
from agent_portal.gateway.limits import ConnectionTracker, RateLimiter
from agent_portal.gateway.presence import Presence
from agent_portal.gateway.publisher import Publisher
from agent_portal.gateway.recovery import RecoveryLog
from agent_portal.orchestrator.external import ExternalOrchestrators
from agent_portal.orchestrator.router import OrchestratorRouter
from agent_portal.services.audit import AuditService
from agent_portal.services.chat import ChatService
from agent_portal.services.config import ConfigService
from agent_portal.services.metrics import Metrics
from agent_portal.settings import Settings
from agent_portal.storage.store import Store


@dataclass
class Services:
    settings: Settings
    clock: SystemClock
    store: Store
    tokens: TokenService
    passwords: PasswordService
    limiter: RateLimiter
    # Password guessing gets a much tighter budget than socket events.
    login_limiter: RateLimiter
    connections: ConnectionTracker
    # Sessions not yet authenticated, per IP (a separate tracker: an IP is not a user name).
    anonymous_connections: ConnectionTracker
    presence: Presence
    publisher: Publisher
    recovery: RecoveryLog
    audit: AuditService
    config: ConfigService
    metrics: Metrics
    router: OrchestratorRouter
    external: ExternalOrchestrators
    chat: ChatService
