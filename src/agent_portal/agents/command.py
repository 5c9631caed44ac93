"""Run a configured program per agent type and stream what it prints.

Each agent type maps to an argument template: a list whose items become argv elements one for one
after placeholder substitution, so a story title full of quotes or semicolons stays one argument and
never reaches a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent_portal.agents.base import AgentBackend, AgentContext, AgentReporter, AgentResult
from agent_portal.domain.models import AgentType, AgentWork

#: Placeholders a template item may contain; anything else in braces is left as written, so JSON or
#: format strings meant for the program pass through untouched.
PLACEHOLDERS = frozenset(
    {"task_id", "story_id", "cycle_id", "phase", "command", "project", "project_path", "agent_type", "kind"}
)
_PLACEHOLDER = re.compile(r"\{(" + "|".join(sorted(PLACEHOLDERS)) + r")\}")
_PROGRESS = re.compile(r"^PROGRESS\s+(\d{1,3})\s*$")

#: One line longer than this is passed on in pieces, so a program printing without newlines cannot
#: make us buffer without bound.
MAX_LINE_BYTES = 64 * 1024
#: How much of each stream is kept for the result; the full text went out live through the reporter.
OUTPUT_TAIL_CHARS = 16 * 1024
#: After the process group is killed, how long the pipe readers get to drain what was already written.
DRAIN_SECONDS = 1.0
WORK_ENV = "AGENT_PORTAL_WORK"

LineHandler = Callable[[str, str], Awaitable[None]]


def substitute(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """One pass per item: a value that itself contains ``{task_id}`` is not expanded again."""
    return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], item) for item in template]


def placeholder_values(work: AgentWork, context: AgentContext) -> dict[str, str]:
    return {
        "task_id": work.task_id,
        "story_id": work.story_id or "",
        "cycle_id": work.cycle_id or "",
        "phase": "" if work.phase is None else work.phase.value,
        "command": work.command,
        "project": work.project_name,
        "project_path": "" if context.project_path is None else str(context.project_path),
        "agent_type": work.agent_type.value,
        "kind": work.kind,
    }


@dataclass(frozen=True)
class ProcessOutcome:
    returncode: int | None
    timed_out: bool


class OutputTail:
    """The last ``limit`` characters of each stream, for the result; the reporter already got it all."""

    def __init__(self, limit: int = OUTPUT_TAIL_CHARS) -> None:
        self.limit = limit
        self.streams: dict[str, str] = {"stdout": "", "stderr": ""}

    def add(self, stream: str, text: str) -> None:
        self.streams[stream] = (self.streams.get(stream, "") + text)[-self.limit :]

    @property
    def stdout(self) -> str:
        return self.streams["stdout"]

    @property
    def stderr(self) -> str:
        return self.streams["stderr"]


async def _pump(stream: asyncio.StreamReader, name: str, on_line: LineHandler) -> None:
    # Our own splitting instead of readline(): readline raises once a line outgrows the reader's
    # limit, and a misbehaving agent must not be able to break the stream for everyone.
    buffer = b""
    while True:
        chunk = await stream.read(MAX_LINE_BYTES)
        if not chunk:
            break
        buffer += chunk
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                if len(buffer) < MAX_LINE_BYTES:
                    break
                cut = MAX_LINE_BYTES - 1
            line, buffer = buffer[: cut + 1], buffer[cut + 1 :]
            await on_line(name, line.decode("utf-8", errors="replace"))
    if buffer:
        await on_line(name, buffer.decode("utf-8", errors="replace"))


def _protocol_factory(stream: asyncio.StreamReader) -> Callable[[], asyncio.StreamReaderProtocol]:
    return lambda: asyncio.StreamReaderProtocol(stream)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The program was started in its own session, so its pid is the group id: killing the group
    # also ends whatever it spawned (a shell script's children, a test runner's workers).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_seconds: float,
    on_line: LineHandler,
    env: Mapping[str, str] | None = None,
) -> ProcessOutcome:
    """Run ``argv`` (no shell) in ``cwd``, calling ``on_line(stream, line)`` for every line of stdout
    and stderr as it arrives (lines keep their ``\\n``). On timeout, or if the caller is cancelled,
    the whole process group is killed. Raises ``OSError`` when the program cannot be started."""
    # Our own pipes rather than asyncio's: on Python 3.11 Process.wait() also waits for asyncio's
    # pipes to close, and a grandchild that left the process group could hold them open for as
    # long as it likes. Pipes we own we can simply close, so a run always ends on time.
    loop = asyncio.get_running_loop()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            start_new_session=True,
        )
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        # The child has its own copies; ours would keep the pipes from ever reaching EOF.
        os.close(out_write)
        os.close(err_write)
    pipes = {
        "stdout": os.fdopen(out_read, "rb", buffering=0),
        "stderr": os.fdopen(err_read, "rb", buffering=0),
    }
    transports: list[asyncio.ReadTransport] = []
    readers: list[asyncio.Task[None]] = []
    timed_out = False
    try:
        for name, pipe in pipes.items():
            stream = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(_protocol_factory(stream), pipe)
            transports.append(transport)
            readers.append(asyncio.create_task(_pump(stream, name, on_line)))
        try:
            async with asyncio.timeout(timeout_seconds):
                # asyncio.wait, not gather: a timeout must not cancel the readers before they drain.
                await asyncio.wait(readers, return_when=asyncio.FIRST_EXCEPTION)
                failed = [r.exception() for r in readers if r.done()]
                error = next((e for e in failed if e is not None), None)
                if error is not None:
                    raise error
                await process.wait()
        except TimeoutError:
            timed_out = True
            _kill_group(process)
            # What the program wrote before it died is still in the pipes: let the readers finish.
            await asyncio.wait(readers, timeout=DRAIN_SECONDS)
    finally:
        if process.returncode is None:
            _kill_group(process)
        for reader in readers:
            reader.cancel()
        # A reader's own error was raised above already; here only the cleanup matters.
        await asyncio.gather(*readers, return_exceptions=True)
        for transport in transports:
            transport.close()
        for pipe in pipes.values():
            pipe.close()  # the transports close these too; a file object closes only once
        # Reap it so no zombie outlives the run; after SIGKILL this is quick.
        await asyncio.shield(process.wait())
    return ProcessOutcome(returncode=process.returncode, timed_out=timed_out)


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}"


class CommandBackend:
    """``commands`` maps an agent type to its argument template; work for a type without one goes to
    ``fallback`` (typically the demo backend), or fails when there is none.

    A line ``PROGRESS <n>`` on stdout reports progress and is not passed on as output; every other
    line is passed to the reporter as it arrives. Exit code 0 is success. The program also gets the
    whole work item as JSON in the ``AGENT_PORTAL_WORK`` environment variable."""

    name = "command"

    def __init__(
        self,
        commands: Mapping[AgentType, Sequence[str]],
        fallback: AgentBackend | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        for agent_type, template in commands.items():
            if isinstance(template, str) or not template or not all(isinstance(i, str) for i in template):
                # A plain string would be split into characters; refuse it at configuration time.
                raise ValueError(f"command for {agent_type} must be a non-empty list of strings")
        self._commands = {AgentType(k): list(v) for k, v in commands.items()}
        self._fallback = fallback
        self._env = dict(os.environ if env is None else env)

    def backend_for(self, agent_type: AgentType) -> AgentBackend | None:
        """Which backend runs this type: this one, the fallback, or none (so the UI can label demo work)."""
        return self if agent_type in self._commands else self._fallback

    async def run(self, work: AgentWork, context: AgentContext, report: AgentReporter) -> AgentResult:
        template = self._commands.get(work.agent_type)
        if template is None:
            if self._fallback is None:
                return AgentResult(success=False, error=f"No command configured for {work.agent_type.value}")
            return await self._fallback.run(work, context, report)
        if context.project_path is None:
            # Running an agent in the server's own directory would be worse than not running it.
            return AgentResult(success=False, error="The project has no path to run the agent in")
        argv = substitute(template, placeholder_values(work, context))
        env = {**self._env, WORK_ENV: json.dumps(work.to_dict())}
        last_progress = 0
        tail = OutputTail()

        async def on_line(stream: str, line: str) -> None:
            nonlocal last_progress
            if stream == "stdout":
                match = _PROGRESS.match(line.rstrip("\r\n"))
                if match is not None:
                    value = min(100, int(match.group(1)))
                    if value > last_progress:
                        last_progress = value
                        await report.progress(value)
                    return
            tail.add(stream, line)
            await report.output(stream, line)

        await report.progress(0)
        try:
            outcome = await run_process(
                argv,
                cwd=context.project_path,
                timeout_seconds=context.timeout_seconds,
                on_line=on_line,
                env=env,
            )
        except OSError as exc:
            return AgentResult(success=False, error=f"Cannot start {argv[0]}: {exc.strerror or exc}")
        if outcome.timed_out:
            return AgentResult(
                success=False,
                output=tail.stdout,
                error=f"{argv[0]} timed out after {format_seconds(context.timeout_seconds)} s",
            )
        if outcome.returncode != 0:
            detail = tail.stderr.strip().splitlines()[-1:] or [""]
            return AgentResult(
                success=False,
                output=tail.stdout,
                error=f"{argv[0]} exited with code {outcome.returncode}"
                + (f": {detail[0]}" if detail[0] else ""),
            )
        await report.progress(100)
        return AgentResult(success=True, output=tail.stdout)
