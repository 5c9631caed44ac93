"""The official socket.io-client (Node) against a live server, over websocket, polling and upgrade."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from support import LiveServer

JS = Path(__file__).resolve().parents[1] / "js"

MODES = {
    "websocket": {"transports": ["websocket"], "upgrade": False, "final": "websocket"},
    "polling": {"transports": ["polling"], "upgrade": False, "final": "polling"},
    "upgrade": {"transports": ["polling", "websocket"], "upgrade": True, "final": "websocket"},
}


async def run_scenario(server: LiveServer, mode: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is required (scripts/bootstrap --node installs the packages)"
    assert (JS / "node_modules" / "socket.io-client").exists(), "run scripts/bootstrap --node"
    config = {
        "url": server.url,
        "transports": mode["transports"],
        "upgrade": mode["upgrade"],
        "tokens": {
            "alice": server.token("alice", "member", ["ext"]),
            "admin": server.token("root", "admin"),
            "orchestrator": server.token("bot", "orchestrator", ["ext"]),
        },
    }
    proc = await asyncio.create_subprocess_exec(
        node, str(JS / "scenario.mjs"), json.dumps(config), stdout=asyncio.subprocess.PIPE, cwd=JS
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    return dict(json.loads(stdout.decode().strip().splitlines()[-1]))


@pytest.mark.parametrize("mode", list(MODES))
async def test_official_client(server: LiveServer, mode: str) -> None:
    await server.add_project("ext", external=True)
    out = await run_scenario(server, MODES[mode])
    assert out["ok"], out.get("error")
    assert out["join"]["ok"] is True and out["join"]["data"]["project_name"] == "ext"
    assert out["publish"] == {"ok": True, "data": {"event": "state_change"}}
    assert out["state_change"]["new_state"] == "BACKLOG_READY"
    assert out["state_change_on_portal"] == out["state_change"]
    assert out["bad_message"]["ok"] is False
    assert out["validation_error"]["message"] == "Invalid message format"
    assert {d["path"] for d in out["validation_error"]["details"]} == {"content", "type"}
    assert out["command_ack"]["ok"] is True
    assert out["command_result"]["command"] == "/state" and out["command_result"]["success"] is True
    assert out["unknown"]["error"]["code"] == "unknown_event"
    assert out["refused_token"]["data"] == {"message": "Invalid token", "code": "invalid_token"}
    assert out["refused_project"]["data"]["code"] == "project_not_found"
    assert out["refused_admin"]["data"]["code"] == "forbidden"
    assert out["transport"] == MODES[mode]["final"]
