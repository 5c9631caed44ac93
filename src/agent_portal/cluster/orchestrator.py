"""Exactly one node runs the embedded orchestrator; the others send it their commands (decisions §9).

The node that holds the lease (`{prefix}:orchestrator`, a Redis key with a TTL that its holder keeps
renewing) runs the embedded orchestrator: agent work, approval expiry, the project aggregates. When
that node dies, the key expires and another node takes it within `LEASE_TTL` seconds and resumes
every project from the database, as after a restart (interrupted work is marked and run again). A
node that cannot renew in time stops its orchestrator before anyone else can take over. The
aggregate's optimistic versioning (`VersionConflict`) guards the store even then.

Commands reach the holder as requests on its node channel; replies come back on the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from agent_portal.auth.policy import Principal, principal_for
from agent_portal.cluster.node import ClusterNode
from agent_portal.errors import PortalError, UnavailableError
from agent_portal.orchestrator.embedded import EmbeddedOrchestrator

log = logging.getLogger(__name__)

LEASE_TTL = 4.0
# How long a command waits for a holder (during a takeover) and then for its reply.
FIND_HOLDER_TIMEOUT = LEASE_TTL + 2.0
CALL_TIMEOUT = 30.0

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
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        # Called with True when this node takes the lease, False when it gives it up.
        self.listeners: list[Callable[[bool], None]] = []
        node.on(node.channel, self._message)

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
        for task in list(self._serving):
            task.cancel()
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
        if self.holds:
            return await self.embedded.run_command(project, command, args, user)
        request = {"project": project, "command": command, "args": args, "user": _principal(user)}
        return dict(await self._call("run_command", request))

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]:
        if self.holds:
            return await self.embedded.resolve_approval(project, request_id, approved, user, comment)
        request = {
            "project": project,
            "request_id": request_id,
            "approved": approved,
            "user": _principal(user),
            "comment": comment,
        }
        return dict(await self._call("resolve_approval", request))

    async def snapshot(self, project: str) -> dict[str, Any]:
        if self.holds:
            return await self.embedded.snapshot(project)
        return dict(await self._call("snapshot", {"project": project}))

    async def current_state(self, project: str) -> str:
        if self.holds:
            return await self.embedded.current_state(project)
        return str((await self._call("current_state", {"project": project}))["state"])

    def active_tasks(self) -> int:
        return self.embedded.active_tasks() if self.holds else 0

    # --- requests between nodes -------------------------------------------------------------

    async def _call(self, method: str, request: dict[str, Any]) -> Any:
        """Runs a request on the lease holder; its result, or its PortalError raised here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIND_HOLDER_TIMEOUT
        call_id = secrets.token_hex(8)
        message = json.dumps(
            {"kind": "request", "id": call_id, "from": self._node.id, "method": method, **request}
        )
        while True:
            holder = await self.holder()
            if holder == self._node.id and self.holds:
                return await self._serve(method, json.loads(message))
            if holder is not None and holder != self._node.id:
                reply: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._calls[call_id] = reply
                try:
                    if await self._node.redis.publish(self._node.key("to", holder), message):
                        try:
                            answer = await asyncio.wait_for(reply, CALL_TIMEOUT)
                        except TimeoutError:
                            raise _unavailable() from None
                        return _unwrap(answer)
                finally:
                    self._calls.pop(call_id, None)
            # No holder, or it is gone: a takeover is under way. Wait for the new holder.
            if loop.time() > deadline:
                raise _unavailable()
            await asyncio.sleep(0.2)

    async def _message(self, raw: bytes) -> None:
        message = json.loads(raw)
        if message.get("kind") == "reply":
            waiting = self._calls.get(message["id"])
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
            return
        if message.get("kind") == "request":
            # Served in a task: the subscription must go on delivering broadcasts meanwhile.
            task = asyncio.create_task(self._answer(message))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _answer(self, request: dict[str, Any]) -> None:
        try:
            reply = {
                "kind": "reply",
                "id": request["id"],
                "result": await self._serve(request["method"], request),
            }
        except PortalError as exc:
            reply = {
                "kind": "reply",
                "id": request["id"],
                "error": {"message": exc.message, "code": exc.code, "type": exc.type, "details": exc.details},
            }
        except Exception:
            log.exception("orchestrator request failed", extra={"method": request.get("method")})
            reply = {
                "kind": "reply",
                "id": request["id"],
                "error": {"message": "Internal server error", "code": "internal", "type": "server"},
            }
        with contextlib.suppress(RedisError, OSError):
            await self._node.redis.publish(self._node.key("to", request["from"]), json.dumps(reply))

    async def _serve(self, method: str, request: dict[str, Any]) -> Any:
        if not self.holds:
            raise _unavailable()
        project = request["project"]
        result: Any
        if method == "run_command":
            user = _principal_from(request["user"])
            result = await self.embedded.run_command(project, request["command"], request["args"], user)
        elif method == "resolve_approval":
            user = _principal_from(request["user"])
            result = await self.embedded.resolve_approval(
                project, request["request_id"], request["approved"], user, request["comment"]
            )
        elif method == "snapshot":
            result = await self.embedded.snapshot(project)
        elif method == "current_state":
            result = {"state": await self.embedded.current_state(project)}
        else:
            raise PortalError(f"Unknown orchestrator request {method}")
        return result


def _unwrap(reply: dict[str, Any]) -> Any:
    error = reply.get("error")
    if error is None:
        return reply["result"]
    exc = PortalError(error["message"], code=error["code"], details=error.get("details"))
    exc.type = error["type"]
    raise exc


def _principal(user: Principal) -> dict[str, Any]:
    return {"user_id": user.user_id, "role": user.role, "projects": sorted(user.projects)}


def _principal_from(data: dict[str, Any]) -> Principal:
    return principal_for(data["user_id"], data["role"], data["projects"])
