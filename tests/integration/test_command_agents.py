"""Real agents: a program configured per agent type from /admin does each TDD phase in the project's
directory, and the project's own tests decide red and green (issue 3, decisions §6)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent_portal.settings import SecurityLimits
from support import Recorder, live_server, make_settings

AGENT = '''
import pathlib, sys
phase, story = sys.argv[1], sys.argv[2]
root = pathlib.Path.cwd()
print(f"agent {phase} for {story}", flush=True)
print("PROGRESS 50", flush=True)
if phase == "design":
    (root / "DESIGN.md").write_text(f"# {story}\\nvalue() returns 42\\n")
elif phase == "test_red":
    (root / "feature.py").write_text("def value():\\n    return 0\\n")
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_feature.py").write_text(
        "from feature import value\\n\\n\\ndef test_value():\\n    assert value() == 42\\n"
    )
elif phase == "code_green":
    (root / "feature.py").write_text("def value():\\n    return 42\\n")
elif phase == "refactor":
    (root / "feature.py").write_text('ANSWER = 42\\n\\n\\ndef value() -> int:\\n    """The answer."""\\n    return ANSWER\\n')
elif phase == "commit":
    print("committed", flush=True)
'''


async def say(chat: Recorder, text: str) -> dict[str, Any]:
    before = len(chat.of("command_result"))
    await chat.call("send_message", {"content": text, "type": "command"})
    await chat.wait_for("command_result", lambda _r: len(chat.of("command_result")) > before)
    return dict(chat.of("command_result")[before])


async def test_configured_programs_drive_a_story_through_tdd(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "conftest.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent))\n"
    )
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    limits = SecurityLimits(events_per_second=1000, events_per_minute=60_000)
    async with live_server(replace(make_settings(tmp_path / "data"), security=limits)) as server:
        await server.add_project("shop", path=str(repo))
        token = server.token("root", "admin")
        admin = await server.client("/admin", token)
        command = [sys.executable, str(script), "{phase}", "{story_id}"]
        changes = {agent: {"command": command} for agent in ("DesignAgent", "QAAgent", "CodeAgent")}
        assert (await admin.call("update_config", {"config_type": "agent", "changes": changes}))["ok"] is True
        mode = {"orchestration_mode": "autonomous"}
        assert (await admin.call("update_config", {"config_type": "system", "changes": mode}))["ok"] is True

        chat = await server.client("/chat/shop", token)
        project = await server.client("/project/shop", token)
        monitor = await server.client("/monitoring", token)
        assert (await say(chat, '/epic "The answer"'))["success"] is True
        await say(chat, '/backlog add_story "value() returns 42"')
        assert (await say(chat, "/sprint plan"))["success"] is True
        assert (await say(chat, "/sprint start"))["success"] is True
        await project.wait_for("state_change", lambda e: e["new_state"] == "SPRINT_REVIEW", timeout=90)

    walk = [e["new_state"] for e in monitor.of("tdd_state_change")]
    assert walk == ["test_red", "code_green", "refactor", "commit"]
    red = next(e for e in monitor.of("tdd_state_change") if e["new_state"] == "code_green")
    assert {r["status"] for r in red["test_results"]} == {"red"}, (
        "the real failing test let the cycle leave red"
    )
    output = "".join(o["content"] for o in monitor.of("test_output"))
    assert "agent test_red for story-" in output and "1 failed" in output and "1 passed" in output
    assert (repo / "feature.py").read_text().startswith("ANSWER = 42")
    assert any(t["progress"] == 50 for t in project.of("task_update")), "PROGRESS lines become progress"
