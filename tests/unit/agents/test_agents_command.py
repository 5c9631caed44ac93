"""The command backend against tiny real programs: streaming, progress, exit codes, timeouts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from agents_fakes import RecordingReporter, phase_work

from agent_portal.agents.base import AgentContext
from agent_portal.agents.command import CommandBackend, substitute
from agent_portal.agents.demo import DemoBackend
from agent_portal.domain.models import AgentType, TDDState


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _context(tmp_path: Path, timeout: float = 10) -> AgentContext:
    return AgentContext(project_path=tmp_path, timeout_seconds=timeout)


def _alive(pid: int) -> bool:
    # A killed process whose parent is gone may linger as a zombie until init reaps it; that counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _wait_dead(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_success_streams_lines_and_takes_progress_lines(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "agent.py",
        """
        print("designing", flush=True)
        print("PROGRESS 30", flush=True)
        print("PROGRESS 20", flush=True)
        print("PROGRESS  60 ", flush=True)
        print("PROGRESS sixty", flush=True)
        print("done")
        """,
    )
    backend = CommandBackend({AgentType.DESIGN: [sys.executable, script]})
    reporter = RecordingReporter()
    result = await backend.run(
        phase_work(TDDState.DESIGN, agent_type=AgentType.DESIGN), _context(tmp_path), reporter
    )
    assert result.success and result.error is None
    assert reporter.progress_values == [0, 30, 60, 100]
    assert reporter.outputs == [
        ("stdout", "designing\n"),
        ("stdout", "PROGRESS sixty\n"),
        ("stdout", "done\n"),
    ]
    assert result.output == "designing\nPROGRESS sixty\ndone\n"


async def test_failure_exit_code_and_stderr(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "agent.py",
        """
        import sys
        print("trying")
        print("Traceback: something", file=sys.stderr)
        print("boom: tests do not compile", file=sys.stderr)
        sys.exit(3)
        """,
    )
    backend = CommandBackend({AgentType.CODE: [sys.executable, script]})
    reporter = RecordingReporter()
    result = await backend.run(
        phase_work(TDDState.CODE_GREEN, agent_type=AgentType.CODE), _context(tmp_path), reporter
    )
    assert not result.success
    assert result.error == f"{sys.executable} exited with code 3: boom: tests do not compile"
    assert reporter.lines("stderr") == ["Traceback: something\n", "boom: tests do not compile\n"]
    assert reporter.lines("stdout") == ["trying\n"]
    assert 100 not in reporter.progress_values


class _Answering(RecordingReporter):
    """Creates a file the program waits for, as soon as it sees the program's first stderr line."""

    def __init__(self, go: Path) -> None:
        super().__init__()
        self.go = go

    async def output(self, stream: str, text: str) -> None:
        await super().output(stream, text)
        if stream == "stderr" and text == "waiting\n":
            self.go.touch()


async def test_lines_arrive_while_the_program_runs(tmp_path: Path) -> None:
    # The program only finishes after we have reacted to its first line: proof the line was
    # streamed live, not collected at exit.
    go = tmp_path / "go"
    script = _script(
        tmp_path,
        "agent.py",
        f"""
        import os, sys, time
        print("waiting", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 5
        while not os.path.exists({str(go)!r}):
            if time.monotonic() > deadline:
                print("never saw go", file=sys.stderr)
                sys.exit(1)
            time.sleep(0.01)
        print("saw go")
        """,
    )
    backend = CommandBackend({AgentType.QA: [sys.executable, script]})
    reporter = _Answering(go)
    result = await backend.run(phase_work(TDDState.TEST_RED), _context(tmp_path), reporter)
    assert result.success, result.error
    assert reporter.outputs == [("stderr", "waiting\n"), ("stdout", "saw go\n")]


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = _script(
        tmp_path,
        "agent.py",
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    backend = CommandBackend({AgentType.QA: [sys.executable, script]})
    reporter = RecordingReporter()
    began = time.monotonic()
    result = await backend.run(phase_work(TDDState.TEST_RED), _context(tmp_path, timeout=0.8), reporter)
    assert time.monotonic() - began < 5
    assert not result.success
    assert result.error == f"{sys.executable} timed out after 0.8 s"
    assert reporter.lines("stdout") == ["started\n"]
    assert await _wait_dead(int(pid_file.read_text()))


async def test_a_grandchild_that_left_the_group_cannot_hold_the_run(tmp_path: Path) -> None:
    # It keeps our pipes open after the group is killed; the run must still end on time.
    pid_file = tmp_path / "escaped.pid"
    script = _script(
        tmp_path,
        "agent.py",
        f"""
        import subprocess, sys, time
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
        )
        open({str(pid_file)!r}, "w").write(str(child.pid))
        print("started", flush=True)
        time.sleep(30)
        """,
    )
    backend = CommandBackend({AgentType.QA: [sys.executable, script]})
    began = time.monotonic()
    try:
        result = await backend.run(
            phase_work(TDDState.TEST_RED), _context(tmp_path, timeout=0.5), RecordingReporter()
        )
        assert time.monotonic() - began < 4
        assert not result.success and result.error is not None and "timed out after 0.5 s" in result.error
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_cancelling_the_run_kills_the_program(tmp_path: Path) -> None:
    pid_file = tmp_path / "agent.pid"
    script = _script(
        tmp_path,
        "agent.py",
        f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    backend = CommandBackend({AgentType.QA: [sys.executable, script]})
    reporter = RecordingReporter()
    run = asyncio.create_task(backend.run(phase_work(TDDState.TEST_RED), _context(tmp_path), reporter))
    for _ in range(500):
        if reporter.outputs:
            break
        await asyncio.sleep(0.01)
    assert reporter.outputs == [("stdout", "started\n")]
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not _alive(int(pid_file.read_text()))


async def test_placeholders_become_single_arguments_without_a_shell(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "agent.py",
        """
        import json, os, sys
        work = json.loads(os.environ["AGENT_PORTAL_WORK"])
        print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "task": work["task_id"]}))
        """,
    )
    project = tmp_path / "project"
    project.mkdir()
    nasty = "Fix it\"; touch pwned; echo $(id) `id` 'x' {task_id} && rm -rf ."
    template = [
        sys.executable,
        script,
        "--task={task_id}",
        "{story_id}",
        "{cycle_id}",
        "{phase}",
        "{command}",
        "{project}",
        "{agent_type}/{kind}",
        "{unknown}",
        '{"json": 1}',
    ]
    backend = CommandBackend({AgentType.CODE: template})
    work = phase_work(TDDState.REFACTOR, agent_type=AgentType.CODE, command=nasty)
    reporter = RecordingReporter()
    result = await backend.run(work, AgentContext(project_path=project, timeout_seconds=10), reporter)
    assert result.success, result.error
    seen = json.loads(result.output)
    assert seen["argv"] == [
        "--task=task-00000001",
        "story-00000001",
        "tdd-cycle-00000001",
        "refactor",
        nasty,
        "demo",
        "CodeAgent/task",
        "{unknown}",
        '{"json": 1}',
    ]
    assert Path(seen["cwd"]) == project
    assert seen["task"] == "task-00000001"
    assert not (project / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_substitution_is_one_pass() -> None:
    values = {"task_id": "{story_id}", "story_id": "s-1"}
    assert substitute(["{task_id}-{story_id}", "{{task_id}}"], values) == ["{story_id}-s-1", "{{story_id}}"]


async def test_unconfigured_agent_type_goes_to_the_fallback(tmp_path: Path) -> None:
    demo = DemoBackend(step_delay=0)
    backend = CommandBackend({AgentType.CODE: [sys.executable, "-c", "pass"]}, fallback=demo)
    assert backend.backend_for(AgentType.DESIGN) is demo
    assert backend.backend_for(AgentType.CODE) is backend
    reporter = RecordingReporter()
    work = phase_work(TDDState.DESIGN, agent_type=AgentType.DESIGN)
    result = await backend.run(work, _context(tmp_path), reporter)
    assert result == await demo.run(work, _context(tmp_path), RecordingReporter())
    assert all(text.startswith("[demo] ") for _, text in reporter.outputs)


async def test_unconfigured_agent_type_without_fallback_fails(tmp_path: Path) -> None:
    backend = CommandBackend({})
    result = await backend.run(phase_work(TDDState.DESIGN), _context(tmp_path), RecordingReporter())
    assert not result.success and result.error == "No command configured for QAAgent"


async def test_missing_program_or_project_path_fails_cleanly(tmp_path: Path) -> None:
    backend = CommandBackend({AgentType.QA: [str(tmp_path / "no-such-agent")]})
    result = await backend.run(phase_work(TDDState.TEST_RED), _context(tmp_path), RecordingReporter())
    assert not result.success and result.error is not None
    assert result.error.startswith(f"Cannot start {tmp_path / 'no-such-agent'}")
    no_path = AgentContext(project_path=None, timeout_seconds=10)
    result = await backend.run(phase_work(TDDState.TEST_RED), no_path, RecordingReporter())
    assert not result.success and result.error == "The project has no path to run the agent in"


async def test_unterminated_and_overlong_lines(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "agent.py",
        """
        import sys
        sys.stdout.write("x" * 150000)
        sys.stdout.write("\\nlast line without newline")
        """,
    )
    backend = CommandBackend({AgentType.QA: [sys.executable, script]})
    reporter = RecordingReporter()
    result = await backend.run(phase_work(TDDState.TEST_RED), _context(tmp_path), reporter)
    assert result.success
    lines = reporter.lines("stdout")
    assert "".join(lines) == "x" * 150000 + "\nlast line without newline"
    assert max(len(line) for line in lines) <= 64 * 1024
    assert lines[-1] == "last line without newline"


def test_a_plain_string_template_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty list of strings"):
        CommandBackend({AgentType.QA: "python -m agent"})
    with pytest.raises(ValueError):
        CommandBackend({AgentType.QA: []})
