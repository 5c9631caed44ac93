"""Composition root: builds every part from the Settings, and owns their lifecycle (ASGI lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from starlette.applications import Starlette

from agent_portal.agents.base import AgentBackend, AgentContext
from agent_portal.agents.command import CommandBackend
from agent_portal.agents.demo import DemoBackend
from agent_portal.agents.testrun import TestRunner
from agent_portal.auth.passwords import PasswordService
from agent_portal.auth.tokens import TokenService
from agent_portal.clock import SystemClock
from agent_portal.cluster.limits import RedisConnectionCounter, RedisRateLimiter
from agent_portal.cluster.log import RedisRecoveryLog
from agent_portal.cluster.node import ClusterNode
from agent_portal.cluster.orchestrator import ClusterExternal, ClusterOrchestrator
from agent_portal.cluster.presence import RedisPresence
from agent_portal.cluster.rpc import NodeRpc
from agent_portal.domain.models import AgentType, AgentWork
from agent_portal.gateway.base import Gateway, NamespaceModule
from agent_portal.gateway.limits import ConnectionCounter, ConnectionTracker, Limiter, RateLimiter
from agent_portal.gateway.namespaces.admin import AdminNamespace
from agent_portal.gateway.namespaces.chat import ChatNamespace
from agent_portal.gateway.namespaces.monitoring import MonitoringNamespace
from agent_portal.gateway.namespaces.orchestrator import OrchestratorNamespace
from agent_portal.gateway.namespaces.portal import PortalNamespace
from agent_portal.gateway.namespaces.project import ProjectNamespace
from agent_portal.gateway.presence import Presence, PresenceStore
from agent_portal.gateway.publisher import Publisher
from agent_portal.gateway.recovery import RecoveryLog
from agent_portal.gateway.server import asgi_app, build_socket_server
from agent_portal.orchestrator.embedded import EmbeddedOrchestrator
from agent_portal.orchestrator.external import ExternalOrchestrators
from agent_portal.orchestrator.port import ProjectOrchestrator
from agent_portal.orchestrator.router import OrchestratorRouter
from agent_portal.protocol.common import WireModel
from agent_portal.protocol.config import SecurityConfig, SystemConfig
from agent_portal.services.audit import AuditService
from agent_portal.services.chat import ChatService
from agent_portal.services.config import ConfigService
from agent_portal.services.container import Services
from agent_portal.services.metrics import Metrics
from agent_portal.services.system_metrics import SystemMetricsLoop
from agent_portal.settings import Settings, load_secret
from agent_portal.storage import Store, open_store
from agent_portal.storage.store import LogEntry
from agent_portal.web.routes import build_http_app

log = logging.getLogger(__name__)

NAMESPACES: list[Callable[[Gateway], NamespaceModule]] = [
    PortalNamespace,
    ProjectNamespace,
    ChatNamespace,
    MonitoringNamespace,
    AdminNamespace,
    OrchestratorNamespace,
]


@dataclass
class PortalApp:
    asgi: socketio.ASGIApp
    sio: Any
    services: Services
    gateway: Gateway
    http: Starlette
    orchestrator: EmbeddedOrchestrator
    # In a cluster: this node, and the lease that decides whether it runs `orchestrator`.
    cluster: ClusterNode | None = None
    lease: ClusterOrchestrator | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


def _defaults(settings: Settings) -> dict[str, WireModel]:
    limits = settings.security
    return {
        "security": SecurityConfig(
            events_per_second=limits.events_per_second,
            events_per_minute=limits.events_per_minute,
            violations_before_ban=limits.violations_before_ban,
            violation_window_seconds=limits.violation_window_seconds,
            ban_seconds=limits.ban_seconds,
            max_connections=limits.max_connections,
            token_ttl_seconds=limits.token_ttl_seconds,
        ),
        "system": SystemConfig(
            approval_timeout_seconds=settings.approval_timeout_seconds,
            metrics_interval_seconds=settings.metrics_interval_seconds,
        ),
    }


async def create_app(settings: Settings, store: Store | None = None) -> PortalApp:
    """Opens the store and wires every part; background work starts with the ASGI lifespan."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = store or await open_store(settings.resolved_database_url)
    clock = SystemClock()
    sio = build_socket_server(settings)
    window = settings.recovery_window_seconds
    node: ClusterNode | None = None
    if settings.redis_url:
        if settings.resolved_database_url.startswith("sqlite"):
            raise ValueError("a cluster (redis_url) needs a shared database; SQLite lives on one machine")
        node = ClusterNode(settings.redis_url, prefix=settings.cluster_name)
        cluster_log = RedisRecoveryLog(node, window)
        recovery = RecoveryLog(cluster_log, clock, window, feed=cluster_log)
    else:
        recovery = RecoveryLog(store, clock, window)
    publisher = Publisher(sio, recovery)
    metrics = Metrics()
    publisher.listeners.append(metrics.event_out)
    external = ExternalOrchestrators(sio)
    publisher.listeners.append(external.observe)
    config = ConfigService(store, publisher, clock, _defaults(settings))
    await config.load()
    shared = _shared_state(node, config.security)
    limiter = shared.limiter
    config.listeners.append(
        lambda kind, model: setattr(limiter, "config", model) if kind == "security" else None
    )
    audit = AuditService(store, publisher, clock)
    runner = TestRunner()
    embedded = EmbeddedOrchestrator(
        store,
        publisher,
        clock,
        config,
        metrics,
        _agent_picker(config, settings.demo_step_delay, runner),
        runner,
    )
    lease: ClusterOrchestrator | None = None
    if node is not None:
        rpc = NodeRpc(node)
        lease = ClusterOrchestrator(node, rpc, embedded)
        routed_external: ProjectOrchestrator = ClusterExternal(node, rpc, external)
        # Every node folds every broadcast into the external projects' projections.
        cluster_log.observers.append(lambda _node, entry: external.observe(entry.event, entry.data))
    else:
        routed_external = external
    router = OrchestratorRouter(store, routed_external, embedded=lease or embedded)
    services = Services(
        settings=settings,
        clock=clock,
        store=store,
        tokens=TokenService(load_secret(settings)),
        passwords=PasswordService(),
        limiter=limiter,
        login_limiter=shared.login_limiter,
        connections=shared.connections,
        anonymous_connections=shared.anonymous_connections,
        presence=shared.presence,
        publisher=publisher,
        recovery=recovery,
        audit=audit,
        config=config,
        metrics=metrics,
        router=router,
        external=external,
        chat=ChatService(store, publisher, router, audit, metrics, clock, settings.typing_lapse_seconds),
        cluster=node,
        runs_orchestrator=(lambda: lease.holds) if lease is not None else (lambda: True),
    )
    if node is not None:
        cluster_log.observers.append(_reload_config_from_peers(config))
    gateway = Gateway(services, NAMESPACES)
    sio.register_namespace(gateway)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await _start(app)
        try:
            yield
        finally:
            await _stop(app)

    http = build_http_app(services, lifespan)
    app = PortalApp(asgi_app(sio, http), sio, services, gateway, http, embedded, node, lease)
    return app


@dataclass
class SharedState:
    """What the nodes of a cluster must agree on; in this process when there is one node."""

    limiter: Limiter
    # Password guessing gets a much tighter budget than socket events.
    login_limiter: Limiter
    connections: ConnectionCounter
    anonymous_connections: ConnectionCounter
    presence: PresenceStore


def _shared_state(node: ClusterNode | None, security: SecurityConfig) -> SharedState:
    login = SecurityConfig(events_per_second=5, events_per_minute=10)
    if node is None:
        return SharedState(
            RateLimiter(security), RateLimiter(login), ConnectionTracker(), ConnectionTracker(), Presence()
        )
    return SharedState(
        RedisRateLimiter(node, security, "events"),
        RedisRateLimiter(node, login, "login"),
        RedisConnectionCounter(node, "users"),
        RedisConnectionCounter(node, "ips"),
        RedisPresence(node),
    )


def _reload_config_from_peers(config: ConfigService) -> Callable[[str, LogEntry], None]:
    """Another node changed the live config (it announced `config_changed`): read it here too."""
    pending: set[asyncio.Task[None]] = set()

    def observe(_node: str, entry: LogEntry) -> None:
        if entry.event == "config_changed":
            task = asyncio.ensure_future(config.reload())
            pending.add(task)
            task.add_done_callback(pending.discard)

    return observe


def _agent_picker(
    config: ConfigService, demo_delay: float, runner: TestRunner
) -> Callable[[AgentWork, AgentContext], AgentBackend]:
    """Test runs use the project's real test command; agents run their configured program, else the demo."""
    demo = DemoBackend(step_delay=demo_delay)

    def pick(work: AgentWork, context: AgentContext) -> AgentBackend:
        if work.kind == "run_tests" and context.project_path is not None:
            return runner
        commands = {
            agent: settings.command
            for agent in AgentType
            if (settings := getattr(config.agents, agent.value)).command
        }
        return CommandBackend(commands, fallback=demo) if work.agent_type in commands else demo

    return pick


def _counts(app: PortalApp) -> tuple[int, int, int]:
    contexts = app.gateway.contexts.values()
    projects = {c.project for c in contexts if c.project} | {p for c in contexts for p in c.joined}
    tasks = app.lease.active_tasks() if app.lease is not None else app.orchestrator.active_tasks()
    return len(app.gateway.contexts), len(projects), tasks


async def _prune_loop(app: PortalApp) -> None:
    while True:
        await asyncio.sleep(30)
        try:
            await app.services.recovery.prune()
            app.services.limiter.forget_idle()
        except Exception:
            log.exception("pruning failed")


async def _start(app: PortalApp) -> None:
    s = app.services
    if app.cluster is not None:
        # Subscribed before the log is read, so nothing published in between is missed.
        await app.cluster.start()
    await s.recovery.start()
    app.tasks.append(asyncio.create_task(_prune_loop(app), name="prune"))
    metrics_loop = SystemMetricsLoop(
        s.publisher,
        s.metrics,
        s.clock,
        interval=lambda: s.config.system.metrics_interval_seconds,
        counts=lambda: _counts(app),
        disk_path=str(s.settings.data_dir.resolve()),
        publishes=s.runs_orchestrator,
    )
    app.tasks.append(asyncio.create_task(metrics_loop.run(), name="system-metrics"))
    if app.lease is not None:
        app.tasks.append(asyncio.create_task(app.lease.run(), name="orchestrator-lease"))
    else:
        await app.orchestrator.start()
        app.tasks.append(asyncio.create_task(app.orchestrator.run_expiry(), name="approval-expiry"))


async def _stop(app: PortalApp) -> None:
    for task in reversed(app.tasks):
        task.cancel()
    for task in reversed(app.tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    app.tasks.clear()
    if app.lease is not None:
        await app.lease.stop()
    else:
        await app.orchestrator.stop()
    app.services.chat.close()
    if app.cluster is not None:
        await app.cluster.stop()
    await app.services.store.close()
