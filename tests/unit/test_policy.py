"""The authorization policy as a table: role × permission × project (decisions §2)."""

from __future__ import annotations

import itertools

import pytest

from agent_portal.auth.policy import Permission, can, can_see, principal_for

P = Permission
GRANTS = {
    "viewer": {P.PROJECTS_READ, P.MONITORING_READ},
    "member": {P.PROJECTS_READ, P.CHAT_WRITE, P.COMMANDS_RUN, P.APPROVALS_RESOLVE, P.MONITORING_READ},
    "admin": {P.PROJECTS_READ, P.CHAT_WRITE, P.COMMANDS_RUN, P.APPROVALS_RESOLVE, P.MONITORING_READ, P.ADMIN},
    "orchestrator": {P.ORCHESTRATOR},
}


@pytest.mark.parametrize(
    ("role", "permission", "project"),
    list(itertools.product(GRANTS, list(Permission), ["own", "foreign", None])),
)
def test_policy_table(role: str, permission: Permission, project: str | None) -> None:
    principal = principal_for("u", role, ["own"])  # type: ignore[arg-type]
    granted = permission in GRANTS[role]
    visible = project in (None, "own") or role == "admin"
    assert can(principal, permission, project) is (granted and visible)


def test_star_claim_sees_every_project_but_grants_no_more() -> None:
    star = principal_for("u", "viewer", ["*"])
    assert can_see(star, "anything") and can(star, P.PROJECTS_READ, "anything")
    assert not can(star, P.CHAT_WRITE, "anything")


def test_admin_sees_projects_outside_its_claim() -> None:
    assert can_see(principal_for("root", "admin", []), "demo")
