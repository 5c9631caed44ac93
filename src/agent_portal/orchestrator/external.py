"""External orchestrators (decisions §6): processes on `/orchestrator` that publish events and answer
commands for projects added with `--external`. What the portal knows of such a project is a projection
of the events they publish."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from agent_portal.auth.policy import Principal
from agent_portal.errors import UnavailableError
from agent_portal.protocol.server_events import OrchestratorCommandEvent


@dataclass
class ProjectProjection:
    state: str = "IDLE"
    pending_approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    sprint: dict[str, Any] | None = None
    backlog: dict[str, dict[str, Any]] = field(default_factory=dict)
    cycles: dict[str, dict[str, Any]] = field(default_factory=dict)


def approval_command(request_id: str, approved: bool, comment: str | None) -> tuple[str, dict[str, Any]]:
    """An approval, as the chat command an external orchestrator is sent for it."""
    args: dict[str, Any] = {"request_id": request_id, "approved": approved}
    if comment:
        args["comment"] = comment
    return ("/approve" if approved else "/reject"), args


class ExternalOrchestrators:
    COMMAND_TIMEOUT = 30.0

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self._serving: dict[str, list[str]] = {}  # project -> orchestrator sids, newest last
        self.projections: dict[str, ProjectProjection] = {}
        # Told when the set of served projects changes (a cluster publishes where they are).
        self.listeners: list[Callable[[], None]] = []

    def register(self, sid: str, projects: list[str]) -> None:
        for project in projects:
            self._serving.setdefault(project, []).append(sid)
        self._changed()

    def unregister(self, sid: str) -> None:
        for sids in self._serving.values():
            if sid in sids:
                sids.remove(sid)
        self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def served_projects(self) -> set[str]:
        """Projects (or "*") an orchestrator connected here serves."""
        return {project for project, sids in self._serving.items() if sids}

    def has_orchestrator(self, project: str) -> bool:
        return bool(self._serving.get(project) or self._serving.get("*"))

    def serves(self, project: str, sid: str) -> bool:
        return sid in self._serving.get(project, []) or sid in self._serving.get("*", [])

    def _sid_for(self, project: str) -> str:
        sids = self._serving.get(project) or self._serving.get("*") or []
        if not sids:
            raise UnavailableError(
                f"No orchestrator is connected for project {project}", code="orchestrator_unavailable"
            )
        return sids[-1]

    def observe(self, event: str, data: dict[str, Any]) -> None:
        """Folds a published event into the project's projection (only used for external projects)."""
        project = data.get("project_name")
        if not isinstance(project, str):
            return
        p = self.projections.get(project)
        if p is None:  # not setdefault, which would build a projection per event
            p = self.projections[project] = ProjectProjection()
        if event == "state_change":
            p.state = data["new_state"]
        elif event == "approval_request":
            p.pending_approvals[data["request_id"]] = data
        elif event == "approval_resolved":
            p.pending_approvals.pop(data["request_id"], None)
        elif event == "task_update":
            if data["status"] in ("completed", "failed", "cancelled"):
                p.tasks.pop(data["task_id"], None)
            else:
                p.tasks[data["task_id"]] = data
        elif event == "sprint_progress":
            p.sprint = data
        elif event == "backlog_updated":
            if data["change_type"] == "removed":
                p.backlog.pop(data["story_id"], None)
            elif data.get("story"):
                p.backlog[data["story_id"]] = data["story"]
        elif event == "tdd_cycle_started":
            p.cycles[data["cycle_id"]] = {**data, "current_state": "design"}
        elif event == "tdd_state_change" and data["cycle_id"] in p.cycles:
            p.cycles[data["cycle_id"]]["current_state"] = data["new_state"]

    async def run_command(
        self, project: str, command: str, args: dict[str, Any], user: Principal
    ) -> dict[str, Any]:
        sid = self._sid_for(project)
        request = OrchestratorCommandEvent(
            request_id=str(uuid.uuid4()),
            project_name=project,
            command=command,
            args=args,
            user_id=user.user_id,
        )
        try:
            reply = await self._sio.call(
                "command", request.wire(), to=sid, namespace="/orchestrator", timeout=self.COMMAND_TIMEOUT
            )
        except socketio.exceptions.TimeoutError:
            return {"success": False, "error": "The orchestrator did not answer in time"}
        if not isinstance(reply, dict) or not isinstance(reply.get("success"), bool):
            return {"success": False, "error": "The orchestrator sent an invalid reply"}
        result = reply.get("result")
        out: dict[str, Any] = {"success": reply["success"]}
        if isinstance(result, dict):
            out.update({k: v for k, v in result.items() if k != "success"})
        elif result is not None:
            out["result"] = result
        if reply.get("error"):
            out["error"] = str(reply["error"])
        return out

    async def resolve_approval(
        self, project: str, request_id: str, approved: bool, user: Principal, comment: str | None
    ) -> dict[str, Any]:
        return await self.run_command(project, *approval_command(request_id, approved, comment), user)

    async def snapshot(self, project: str) -> dict[str, Any]:
        p = self.projections.get(project, ProjectProjection())
        return {
            "current_state": p.state,
            "pending_approvals": list(p.pending_approvals.values()),
            "active_tasks": list(p.tasks.values()),
            "sprint": p.sprint,
            "backlog": list(p.backlog.values()),
            "active_tdd_cycles": list(p.cycles.values()),
            "orchestrator": "external",
        }

    async def current_state(self, project: str) -> str:
        return self.projections.get(project, ProjectProjection()).state
