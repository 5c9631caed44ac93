"""Everything a request handler may need, built once per server in `app.build` and passed down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent_portal.auth.passwords import PasswordService
from agent_portal.auth.tokens import TokenService
from agent_portal.clock import SystemClock
from agent_portal.cluster.node import ClusterNode
from agent_portal.gateway.limits import ConnectionCounter, Limiter
from agent_portal.gateway.presence import PresenceStore
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
    limiter: Limiter
    # Password guessing gets a much tighter budget than socket events.
    login_limiter: Limiter
    connections: ConnectionCounter
    # Sessions not yet authenticated, per IP (a separate tracker: an IP is not a user name).
    anonymous_connections: ConnectionCounter
    presence: PresenceStore
    publisher: Publisher
    recovery: RecoveryLog
    audit: AuditService
    config: ConfigService
    metrics: Metrics
    router: OrchestratorRouter
    external: ExternalOrchestrators
    chat: ChatService
    # Set when this server is one node of a cluster (`--redis-url`).
    cluster: ClusterNode | None = None
    # Whether this node runs the embedded orchestrator (always, alone; the lease holder, in a cluster).
    runs_orchestrator: Callable[[], bool] = lambda: True
    # Projects seen to exist. Nothing removes a project (the Store has no such call), so once seen
    # it is not read again: a product-path connection read it twice, on connect and on subscribe.
    known_projects: set[str] = field(default_factory=set)

    async def project_exists(self, name: str) -> bool:
        if name in self.known_projects:
            return True
        if await self.store.get_project(name) is None:
            return False  # not remembered: `agent-portal add-project` may add it while we run
        self.known_projects.add(name)
        return True
