"""The live configuration documents of /admin (`get_config` / `update_config`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agent_portal.protocol.common import WireModel

AgentType = Literal["DesignAgent", "QAAgent", "CodeAgent", "DataAgent", "Orchestrator"]
AGENT_TYPES: tuple[AgentType, ...] = ("DesignAgent", "QAAgent", "CodeAgent", "DataAgent", "Orchestrator")


class SecurityConfig(WireModel):
    """Abuse limits (decisions §8); ranges keep an admin from locking everyone out by a typo."""

    events_per_second: Annotated[int, Field(ge=1, le=1000)] = 10
    events_per_minute: Annotated[int, Field(ge=1, le=60000)] = 100
    violations_before_ban: Annotated[int, Field(ge=1, le=100)] = 3
    violation_window_seconds: Annotated[int, Field(ge=10, le=86400)] = 600
    ban_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    max_connections: Annotated[int, Field(ge=1, le=1000)] = 5
    token_ttl_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 8 * 3600


class AgentSettings(WireModel):
    """Per agent type, with the ranges of the domain page's agent configuration."""

    enabled: bool = True
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=10)] = 3
    timeout_minutes: Annotated[int, Field(ge=5, le=120)] = 30
    max_retries: Annotated[int, Field(ge=1, le=5)] = 3
    memory_mb: Annotated[int, Field(ge=512, le=4096)] = 1024
    command: Annotated[list[str], Field(max_length=64)] | None = Field(
        default=None, description="program and argument template for the command backend; none = demo agent"
    )


class AgentConfig(WireModel):
    DesignAgent: AgentSettings = AgentSettings()
    QAAgent: AgentSettings = AgentSettings()
    CodeAgent: AgentSettings = AgentSettings()
    DataAgent: AgentSettings = AgentSettings()
    Orchestrator: AgentSettings = AgentSettings()


class SystemConfig(WireModel):
    approval_timeout_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 30 * 60
    orchestration_mode: Literal["blocking", "partial", "autonomous"] = "blocking"
    metrics_interval_seconds: Annotated[float, Field(ge=1, le=3600)] = 5.0
    test_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    max_concurrent_cycles: Annotated[int, Field(ge=1, le=20)] = 3
    test_command: Annotated[list[str], Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="argv of `/tdd run_tests` in the project's path; none = python -m pytest -q"
    )


class UserConfig(WireModel):
    chat_history_page: Annotated[int, Field(ge=10, le=100)] = 50
    default_viewer_projects: Annotated[list[str], Field(max_length=256)] = Field(default_factory=list)


CONFIG_MODELS: dict[str, type[WireModel]] = {
    "security": SecurityConfig,
    "agent": AgentConfig,
    "system": SystemConfig,
    "user": UserConfig,
}
