"""agent-portal: the real-time server between a web portal and an AI-agent orchestrator."""

__version__ = "0.1.0"
