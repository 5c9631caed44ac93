"""An asyncio client of agent-portal for scripts, agents and external orchestrators.

client = await PortalClient.login("http://127.0.0.1:8000", "alice", "secret")
client.on("/portal", "state_change", lambda e: print(e.new_state))
await client.connect("/portal", "/chat/demo")
await client.join_project("demo")
await client.call("/chat/demo", "send_message", {"content": "/state", "type": "command"})
"""

from agent_portal.client.auth import Session
from agent_portal.client.backoff import Backoff
from agent_portal.client.errors import (
    AuthenticationFailed,
    ConnectRefused,
    Forbidden,
    NetworkError,
    NotFound,
    PortalError,
    RateLimited,
    ServerError,
    UnknownEvent,
    ValidationFailed,
)
from agent_portal.client.orchestrator import CommandHandler, OrchestratorClient
from agent_portal.client.portal import ConnectionState, Handler, PortalClient, StateChange, TokenProvider
from agent_portal.protocol.client_events import CommandReply
from agent_portal.protocol.server_events import OrchestratorCommandEvent

__all__ = [
    "AuthenticationFailed",
    "Backoff",
    "CommandHandler",
    "CommandReply",
    "ConnectRefused",
    "ConnectionState",
    "Forbidden",
    "Handler",
    "NetworkError",
    "NotFound",
    "OrchestratorClient",
    "OrchestratorCommandEvent",
    "PortalClient",
    "PortalError",
    "RateLimited",
    "ServerError",
    "Session",
    "StateChange",
    "TokenProvider",
    "UnknownEvent",
    "ValidationFailed",
]
