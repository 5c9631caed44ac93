"""Who may do what: a pure function over (principal, permission, project), tested as a table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent_portal.protocol.common import Role


class Permission(StrEnum):
    PROJECTS_READ = "projects:read"
    CHAT_WRITE = "chat:write"
    COMMANDS_RUN = "commands:run"
    APPROVALS_RESOLVE = "approvals:resolve"
    MONITORING_READ = "monitoring:read"
    ADMIN = "admin"
    ORCHESTRATOR = "orchestrator"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({Permission.PROJECTS_READ, Permission.MONITORING_READ}),
    "member": frozenset(
        {
            Permission.PROJECTS_READ,
            Permission.CHAT_WRITE,
            Permission.COMMANDS_RUN,
            Permission.APPROVALS_RESOLVE,
            Permission.MONITORING_READ,
        }
    ),
    "admin": frozenset(Permission) - {Permission.ORCHESTRATOR},
    # A service identity: publishes events and answers commands for its projects, nothing else.
    "orchestrator": frozenset({Permission.ORCHESTRATOR}),
}

ALL_PROJECTS = "*"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    permissions: frozenset[Permission]
    projects: frozenset[str]

    @property
    def sees_all_projects(self) -> bool:
        return self.role == "admin" or ALL_PROJECTS in self.projects

    @property
    def permission_names(self) -> list[str]:
        return sorted(p.value for p in self.permissions)


def principal_for(user_id: str, role: Role, projects: list[str] | tuple[str, ...]) -> Principal:
    return Principal(user_id, role, ROLE_PERMISSIONS[role], frozenset(projects))


def can_see(principal: Principal, project: str) -> bool:
    return principal.sees_all_projects or project in principal.projects


def can(principal: Principal, permission: Permission, project: str | None = None) -> bool:
    """True when the principal holds `permission`, and, for a project action, may see that project."""
    if permission not in principal.permissions:
        return False
    return project is None or can_see(principal, project)
