"""A valid `data` of every event an orchestrator may publish (decisions §6), for tests."""

from __future__ import annotations

import copy
from typing import Any

NOW = "2026-11-25T20:00:00.000Z"
TASK = {"id": "task-1", "agent_type": "CodeAgent", "command": "implement", "created_at": NOW}
STORY = {"id": "story-1", "title": "Login", "created_at": NOW}

SYSTEM_METRICS: dict[str, Any] = {
    "timestamp": NOW,
    "cpu_usage": 12.5,
    "memory_usage": 40.0,
    "disk_usage": 50.0,
    "network_io": {"bytes_sent": 1, "bytes_received": 2},
    "active_connections": 3,
    "active_projects": 1,
    "active_tasks": 0,
    "error_rate": 0.0,
    "uptime": 10.0,
}


def sample(event: str, project: str) -> dict[str, Any]:
    """`event`'s data for `project` (system_metrics is no project's: the same for any), a copy of its own."""
    base = {"project_name": project}
    data: dict[str, Any] = {
        "state_change": {
            **base,
            "old_state": "IDLE",
            "new_state": "BACKLOG_READY",
            "timestamp": NOW,
            "triggered_by": "bot",
            "command": "/epic",
        },
        "task_update": {
            **base,
            "task_id": "t1",
            "task_type": "code",
            "status": "in_progress",
            "progress": 40,
            "agent_type": "CodeAgent",
        },
        "approval_request": {
            **base,
            "request_id": "r1",
            "task": TASK,
            "reason": "Blocking mode requires approval",
            "created_at": NOW,
            "retry_count": 0,
            "timeout_at": NOW,
        },
        "approval_resolved": {
            **base,
            "request_id": "r1",
            "approved": True,
            "resolved_by": "lead",
            "resolved_at": NOW,
        },
        "sprint_progress": {
            **base,
            "sprint_id": "s1",
            "total_stories": 3,
            "completed_stories": 1,
            "failed_stories": 0,
            "in_progress_stories": 1,
            "estimated_completion": NOW,
            "velocity": 1.5,
        },
        "backlog_updated": {
            **base,
            "change_type": "added",
            "story_id": "story-1",
            "story": STORY,
            "new_position": 0,
        },
        "agent_activity": {
            **base,
            "agent_type": "QAAgent",
            "action": "write_tests",
            "status": "started",
            "timestamp": NOW,
        },
        "tdd_cycle_started": {
            **base,
            "cycle_id": "c1",
            "story_id": "story-1",
            "started_by": "bot",
            "estimated_duration": 60000,
            "timestamp": NOW,
        },
        "tdd_state_change": {
            **base,
            "cycle_id": "c1",
            "old_state": "design",
            "new_state": "test_red",
            "timestamp": NOW,
            "phase_duration": 1200,
        },
        "test_output": {
            **base,
            "cycle_id": "c1",
            "output_type": "stdout",
            "content": "1 passed",
            "timestamp": NOW,
            "sequence_number": 1,
        },
        "system_metrics": SYSTEM_METRICS,
    }[event]
    return copy.deepcopy(data)
