"""Which events exist, in which namespace, in which direction, and which model describes each."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

from agent_portal.protocol import client_events as c
from agent_portal.protocol import server_events as s
from agent_portal.protocol.common import Ack, WebSocketError


class NamespaceKind(StrEnum):
    PORTAL = "portal"
    PROJECT = "project"
    CHAT = "chat"
    MONITORING = "monitoring"
    ADMIN = "admin"
    ORCHESTRATOR = "orchestrator"


_SUBSCRIPTION_EVENTS: dict[str, type[BaseModel]] = {
    "join_project": c.JoinProjectRequest,
    "leave_project": c.LeaveProjectRequest,
    "subscribe_to_events": c.SubscribeRequest,
}

CLIENT_EVENTS: dict[NamespaceKind, dict[str, type[BaseModel]]] = {
    NamespaceKind.PORTAL: dict(_SUBSCRIPTION_EVENTS),
    NamespaceKind.PROJECT: {
        **_SUBSCRIPTION_EVENTS,
        "get_snapshot": c.EmptyRequest,
        "resolve_approval": c.ResolveApprovalRequest,
    },
    NamespaceKind.CHAT: {
        "send_message": c.SendMessageRequest,
        "typing_start": c.EmptyRequest,
        "typing_stop": c.EmptyRequest,
        "get_history": c.GetHistoryRequest,
        "add_reaction": c.ReactionRequest,
        "remove_reaction": c.ReactionRequest,
    },
    NamespaceKind.MONITORING: {
        "subscribe_to_events": c.SubscribeRequest,
        "get_test_output": c.GetTestOutputRequest,
    },
    NamespaceKind.ADMIN: {
        "get_config": c.GetConfigRequest,
        "update_config": c.UpdateConfigRequest,
        "get_audit_log": c.GetAuditLogRequest,
    },
    NamespaceKind.ORCHESTRATOR: {"publish": c.PublishRequest},
}
# Accepted on every namespace (decisions §2).
AUTHENTICATE_EVENT = "authenticate"
COMMON_CLIENT_EVENTS: dict[str, type[BaseModel]] = {AUTHENTICATE_EVENT: c.AuthenticateRequest}

# A project's workflow events: delivered on /project/{name} and to the project's room on /portal.
PROJECT_EVENTS: dict[str, type[BaseModel]] = {
    "state_change": s.StateChangeEvent,
    "task_update": s.TaskUpdateEvent,
    "approval_request": s.ApprovalRequestEvent,
    "approval_resolved": s.ApprovalResolvedEvent,
    "sprint_progress": s.SprintProgressEvent,
    "backlog_updated": s.BacklogUpdatedEvent,
}
# A project's agent and TDD events: delivered on /monitoring and on /project/{name}.
MONITORING_PROJECT_EVENTS: dict[str, type[BaseModel]] = {
    "agent_activity": s.AgentActivityEvent,
    "tdd_cycle_started": s.TDDCycleStartedEvent,
    "tdd_state_change": s.TDDStateChangeEvent,
    "test_output": s.TestOutputEvent,
}
# What an external orchestrator may publish (decisions §6).
PUBLISHABLE_EVENTS: dict[str, type[BaseModel]] = {
    **PROJECT_EVENTS,
    **MONITORING_PROJECT_EVENTS,
    "system_metrics": s.SystemMetricsEvent,
}

SERVER_EVENTS: dict[str, type[BaseModel]] = {
    "joined_project": s.JoinedProjectEvent,
    "user_joined": s.UserJoinedEvent,
    "user_left": s.UserLeftEvent,
    "authenticated": s.AuthenticatedEvent,
    "authentication_failed": s.AuthenticationFailedEvent,
    "validation_error": s.ValidationErrorEvent,
    "rate_limited": s.RateLimitedEvent,
    "error": WebSocketError,
    **PUBLISHABLE_EVENTS,
    "message_received": s.MessageReceivedEvent,
    "command_result": s.CommandResultEvent,
    "typing_start": s.TypingEvent,
    "typing_stop": s.TypingEvent,
    "thread_created": s.ThreadCreatedEvent,
    "thread_updated": s.ThreadUpdatedEvent,
    "reaction_updated": s.ReactionUpdatedEvent,
    "config_changed": s.ConfigChangedEvent,
    "user_action": s.UserActionEvent,
    "command": s.OrchestratorCommandEvent,
}

# Events a socket may narrow its stream to with subscribe_to_events, per namespace.
SUBSCRIBABLE: dict[NamespaceKind, frozenset[str]] = {
    NamespaceKind.PORTAL: frozenset(PROJECT_EVENTS),
    NamespaceKind.PROJECT: frozenset(PROJECT_EVENTS) | frozenset(MONITORING_PROJECT_EVENTS),
    NamespaceKind.MONITORING: frozenset(MONITORING_PROJECT_EVENTS) | {"system_metrics"},
}


# Merged once: every client event looks its model up here, and a merge per event was 0.8 % of the
# server's Python time on the product bench at N = 100 (docs/performance.md, session 15).
_CLIENT_EVENTS_BY_KIND: dict[NamespaceKind, Mapping[str, type[BaseModel]]] = {
    kind: MappingProxyType({**COMMON_CLIENT_EVENTS, **CLIENT_EVENTS[kind]}) for kind in NamespaceKind
}


def client_events_for(kind: NamespaceKind) -> Mapping[str, type[BaseModel]]:
    return _CLIENT_EVENTS_BY_KIND[kind]


def json_schema() -> dict[str, Any]:
    """One JSON Schema document of every event, both directions; the TypeScript types come from it."""
    defs: dict[str, Any] = {}
    models: set[type[BaseModel]] = {Ack, *SERVER_EVENTS.values()}
    for events in (*CLIENT_EVENTS.values(), COMMON_CLIENT_EVENTS):
        models.update(events.values())
    for model in sorted(models, key=lambda m: m.__name__):
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "agent-portal wire protocol",
        "$defs": dict(sorted(defs.items())),
        "x-client-events": {
            kind.value: {name: model.__name__ for name, model in client_events_for(kind).items()}
            for kind in NamespaceKind
        },
        "x-server-events": {name: model.__name__ for name, model in SERVER_EVENTS.items()},
        "x-project-events": sorted(PROJECT_EVENTS),
        "x-monitoring-events": [*sorted(MONITORING_PROJECT_EVENTS), "system_metrics"],
    }
