"""Exactly one node runs the embedded orchestrator; the others send it their commands (decisions §9).

The node that holds the lease (`{prefix}:orchestrator`, a Redis key with a TTL that its holder keeps
renewing) runs the embedded orchestrator: agent work, approval expiry, the project aggregates. When
that node dies, the key expires and another node takes it within `LEASE_TTL` seconds and resumes
every project from the database, as after a restart (interrupted work is marked and run again). A
node that cannot renew in time stops its orchestrator before anyone else can take over. The
aggregate's optimistic versioning (`VersionConflict`) guards the store even then.

Commands reach the holder as requests on its node channel (`cluster/rpc.py`). External
orchestrators are routed the same way, to the node they are connected to (`ClusterExternal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from agent_portal.auth.policy import Principal, principal_for
from agent_portal.cluster.node import ClusterNode
from agent_portal.cluster.rpc import NodeGone, NodeRpc
from agent_portal.errors import UnavailableError
from agent_portal.orchestrator.embedded import EmbeddedOrchestrator
from agent_portal.orchestrator.external import ExternalOrchestrators, approval_command

log = logging.getLogger(__name__)

LEASE_TTL = 4.0
# How long a command waits for a holder during a takeover.
FIND_HOLDER_TIMEOUT = LEASE_TTL + 2.0

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _unavailable() -> UnavailableError:
    return UnavailableError(
        "The orchestrator is moving to another node; try again", code="orchestrator_unavailable"
    )


class ClusterOrchestrator:
    """`ProjectOrchestrator` for embedded projects on a node of a cluster."""

    def __init__(
        self,
        node: ClusterNode,
        rpc: NodeRpc,
        embedded: EmbeddedOrchestrator,
        lease_ttl: float = LEASE_TTL,
    ) -> None:
        self._node = node
        self.embedded = embedded
        self._ttl = lease_ttl
        self._key = node.key("orchestrator")
        self._renew = node.redis.register_script(_RENEW)
        self._release = node.redis.register_script(_RELEASE)
        self.holds = False
        self._renewed_at = 0.0
        self._expiry: asyncio.Task[None] | None = None
        # Called with True when this node takes the lease, False when it gives it up.
        self.listeners: list[Callable[[bool], None]] = []
        self._rpc = rpc
        for method in ("run_command", "resolve_approval", "snapshot", "current_state"):
            rpc.handle(f"orchestrator.{method}", functools.partial(self._serve, method))

    # --- the lease --------------------------------------------------------------------------

    async def run(self) -> None:
        """Holds the lease while it can, tries to take it while someone else has it."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.holds:
                    if await self._renew(keys=[self._key], args=[self._node.id, int(self._ttl * 1000)]):
                        self._renewed_at = loop.time()
                    else:
                        await self._give_up("the lease was taken")
                elif await self._node.redis.set(self._key, self._node.id, nx=True, px=int(self._ttl * 1000)):
                    self._renewed_at = loop.time()
                    await self._take()
            except (RedisError, OSError):
                log.warning("orchestrator lease: Redis unreachable", exc_info=True)
            if self.holds and loop.time() - self._renewed_at > self._ttl * 0.8:
                # Stop before the key can expire and another node start the same work.
                await self._give_up("the lease could not be renewed")
            await asyncio.sleep(self._ttl / 4)

    async def _take(self) -> None:
        log.info("orchestrator lease taken", extra={"node": self._node.id})
        self.holds = True
        await self.embedded.start()
        self._expiry = asyncio.create_task(self.embedded.run_expiry(), name="approval-expiry")
        for listener in self.listeners:
            listener(True)

    async def _give_up(self, why: str) -> None:
        log.warning("orchestrator lease lost: %s", why, extra={"node": self._node.id})
        await self._stop_local()

    async def _stop_local(self) -> None:
        if not self.holds:
            return
        self.holds = False
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        await self.embedded.stop()
        for listener in self.listeners:
            listener(False)

    async def stop(self) -> None:
        """On shutdown: stop the local work, then free the lease so another node takes it at once."""
        held = self.holds
        await self._stop_local()
        if held:
            with contextlib.suppress(RedisError, OSError):
                await self._release(keys=[self._key], args=[self._node.id])

    async def holder(self) -> str | None:
        value = await self._node.redis.get(self._key)
        return value.decode() if isinstance(value, bytes) else value

    # --- ProjectOrchestrator ----------------------------------------------------------------

    async def run_command(
        self, project: str, command: str, args: dict[str, Any], user: Principal
    ) -> dict[str, Any]:
        request = {"project": project, "command": command, "args": args, "user": _principal(user)}
        return dict(await self._call("run_command", request))

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]:
        request = {
            "project": project,
            "request_id": request_id,
            "approved": approved,
            "user": _principal(user),
            "comment": comment,
        }
        return dict(await self._call("resolve_approval", request))

    async def snapshot(self, project: str) -> dict[str, Any]:
        return dict(await self._call("snapshot", {"project": project}))

    async def current_state(self, project: str) -> str:
        return str(await self._call("current_state", {"project": project}))

    def active_tasks(self) -> int:
        return self.embedded.active_tasks() if self.holds else 0

    # --- requests go to the holder ----------------------------------------------------------

    async def _call(self, method: str, request: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIND_HOLDER_TIMEOUT
        while True:
            if self.holds:
                return await self._serve(method, request)
            holder = await self.holder()
            if holder is not None and holder != self._node.id:
                with contextlib.suppress(NodeGone):
                    return await self._rpc.call(holder, f"orchestrator.{method}", request)
            # No holder, or it is gone: a takeover is under way. Wait for the new holder.
            if loop.time() > deadline:
                raise _unavailable()
            await asyncio.sleep(0.2)

    async def _serve(self, method: str, request: dict[str, Any]) -> Any:
        if not self.holds:
            raise _unavailable()
        project = request["project"]
        if method == "run_command":
            user = _principal_from(request["user"])
            return await self.embedded.run_command(project, request["command"], request["args"], user)
        if method == "resolve_approval":
            user = _principal_from(request["user"])
            return await self.embedded.resolve_approval(
                project, request["request_id"], request["approved"], user, request["comment"]
            )
        if method == "snapshot":
            return await self.embedded.snapshot(project)
        return await self.embedded.current_state(project)


# KEYS: the registry hash. ARGV: node, then the projects this node's orchestrator sockets serve.
_REGISTER = """
for _, project in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('HGET', KEYS[1], project) == ARGV[1] then redis.call('HDEL', KEYS[1], project) end
end
for i = 2, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
return #ARGV - 1
"""


class ClusterExternal:
    """External orchestrators in a cluster: a command goes to the node its orchestrator is connected
    to (a registry in Redis, project -> node); snapshots are answered here, because every node folds
    every broadcast into its projections (`ExternalOrchestrators.observe`)."""

    def __init__(self, node: ClusterNode, rpc: NodeRpc, local: ExternalOrchestrators) -> None:
        self._node = node
        self._rpc = rpc
        self.local = local
        self._key = node.key("external")
        self._register = node.redis.register_script(_REGISTER)
        self._pending: set[asyncio.Task[None]] = set()
        local.listeners.append(self._changed)
        rpc.handle("external.run_command", self._serve_command)

    def _changed(self) -> None:
        task = asyncio.ensure_future(self.publish_registry())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def publish_registry(self) -> None:
        served = self.local.served_projects()
        await self._register(keys=[self._key], args=[self._node.id, *sorted(served)])

    async def _where(self, project: str) -> str | None:
        for value in await self._node.redis.hmget(self._key, [project, "*"]):
            node = value.decode() if isinstance(value, bytes) else value
            if node is not None and await self._node.redis.exists(self._node.key("node", node)):
                return str(node)
        return None

    async def run_command(
        self, project: str, command: str, args: dict[str, Any], user: Principal
    ) -> dict[str, Any]:
        if not self.local.has_orchestrator(project):
            target = await self._where(project)
            if target is not None and target != self._node.id:
                request = {"project": project, "command": command, "args": args, "user": _principal(user)}
                with contextlib.suppress(NodeGone):
                    return dict(await self._rpc.call(target, "external.run_command", request))
        return await self.local.run_command(project, command, args, user)

    async def _serve_command(self, request: dict[str, Any]) -> Any:
        user = _principal_from(request["user"])
        return await self.local.run_command(request["project"], request["command"], request["args"], user)

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]:
        return await self.run_command(project, *approval_command(request_id, approved, comment), user)

    async def snapshot(self, project: str) -> dict[str, Any]:
        return await self.local.snapshot(project)

    async def current_state(self, project: str) -> str:
        return await self.local.current_state(project)


def _principal(user: Principal) -> dict[str, Any]:
    return {"user_id": user.user_id, "role": user.role, "projects": sorted(user.projects)}


def _principal_from(data: dict[str, Any]) -> Principal:
    return principal_for(data["user_id"], data["role"], data["projects"])
