"""The portal's autocomplete ships the server's command catalog; it must not go stale."""

from __future__ import annotations

import json
from pathlib import Path

from agent_portal.domain.commands import command_catalog

CATALOG = Path(__file__).resolve().parents[2] / "portal" / "src" / "generated" / "commands.json"


def test_generated_command_catalog_is_fresh() -> None:
    shipped = json.loads(CATALOG.read_text())
    current = [info.to_dict() for info in command_catalog()]
    assert shipped == current, (
        "portal/src/generated/commands.json is stale: run `npm run generate:commands` in portal/"
    )
