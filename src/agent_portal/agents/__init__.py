"""Agent backends: the interface (``base``), the demo, the command runner and the real test runner."""

from agent_portal.agents.base import AgentBackend, AgentContext, AgentReporter, AgentResult
from agent_portal.agents.command import CommandBackend
from agent_portal.agents.demo import DemoBackend
from agent_portal.agents.testrun import TestRunner

__all__ = [
    "AgentBackend",
    "AgentContext",
    "AgentReporter",
    "AgentResult",
    "CommandBackend",
    "DemoBackend",
    "TestRunner",
]
