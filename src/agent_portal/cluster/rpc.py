"""Requests from one node to another, over Redis: each node listens on its own channel.

Used to run a command where its orchestrator is (the lease holder, or the node an external
orchestrator is connected to). A request published to a channel nobody listens on (the node is
gone) fails at once with `NodeGone`, so the caller can look for the new place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from agent_portal.cluster.node import ClusterNode
from agent_portal.errors import PortalError, UnavailableError

log = logging.getLogger(__name__)

CALL_TIMEOUT = 30.0

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class NodeGone(Exception):
    """No node listens on the target's channel any more."""


class NodeRpc:
    def __init__(self, node: ClusterNode) -> None:
        self._node = node
        self._handlers: dict[str, Handler] = {}
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        node.on(node.channel, self._message)

    def handle(self, method: str, handler: Handler) -> None:
        self._handlers[method] = handler

    async def call(self, target: str, method: str, request: dict[str, Any]) -> Any:
        """Runs `method` on node `target`; its result, or its PortalError raised here."""
        call_id = secrets.token_hex(8)
        message = {"kind": "request", "id": call_id, "from": self._node.id, "method": method, "body": request}
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = reply
        try:
            if not await self._node.redis.publish(self._node.key("to", target), json.dumps(message)):
                raise NodeGone(target)
            try:
                answer = await asyncio.wait_for(reply, CALL_TIMEOUT)
            except TimeoutError:
                raise UnavailableError(
                    "The orchestrator did not answer in time", code="orchestrator_unavailable"
                ) from None
        finally:
            self._calls.pop(call_id, None)
        error = answer.get("error")
        if error is None:
            return answer["result"]
        exc = PortalError(error["message"], code=error["code"], details=error.get("details"))
        exc.type = error["type"]
        raise exc

    async def stop(self) -> None:
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)

    async def _message(self, raw: bytes) -> None:
        message = json.loads(raw)
        if message.get("kind") == "reply":
            waiting = self._calls.get(message["id"])
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
        elif message.get("kind") == "request":
            # Served in a task: the subscription must go on delivering broadcasts meanwhile.
            task = asyncio.create_task(self._answer(message))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _answer(self, request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"kind": "reply", "id": request["id"]}
        try:
            handler = self._handlers.get(request["method"])
            if handler is None:
                raise PortalError(f"Unknown request {request['method']}")
            reply["result"] = await handler(request["body"])
        except PortalError as exc:
            reply["error"] = {
                "message": exc.message,
                "code": exc.code,
                "type": exc.type,
                "details": exc.details,
            }
        except Exception:
            log.exception("request from another node failed", extra={"method": request.get("method")})
            reply["error"] = {"message": "Internal server error", "code": "internal", "type": "server"}
        with contextlib.suppress(RedisError, OSError):
            await self._node.redis.publish(self._node.key("to", request["from"]), json.dumps(reply))
