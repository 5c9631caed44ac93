"""Run a project's test command for real and turn its JUnit XML into domain ``TestResult``s."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path, PurePosixPath

from agent_portal.agents.base import AgentContext, AgentReporter, AgentResult
from agent_portal.agents.command import OutputTail, format_seconds, run_process
from agent_portal.domain.models import AgentWork, TestResult, TestStatus

DEFAULT_TEST_COMMAND: tuple[str, ...] = (sys.executable, "-m", "pytest", "-q")
JUNIT_PLACEHOLDER = "{junit}"
#: We only read reports that a test run in the project just wrote, but the project's own code runs
#: in that process; a cap keeps a runaway report from taking the server's memory.
MAX_JUNIT_BYTES = 20 * 1024 * 1024
MAX_RESULT_OUTPUT_CHARS = 4000

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def is_pytest(argv: Sequence[str]) -> bool:
    """``pytest …``, ``py.test …``, ``python -m pytest …`` (any interpreter path)."""
    if not argv:
        return False
    if PurePosixPath(argv[0]).name in {"pytest", "py.test"}:
        return True
    return any(a == "-m" and b == "pytest" for a, b in pairwise(argv))


def junit_argv(argv: Sequence[str], junit_path: Path) -> tuple[list[str], bool]:
    """The command to run and whether it will write JUnit XML to ``junit_path``."""
    if any(JUNIT_PLACEHOLDER in item for item in argv):
        return [item.replace(JUNIT_PLACEHOLDER, str(junit_path)) for item in argv], True
    if is_pytest(argv):
        return [*argv, f"--junitxml={junit_path}"], True
    return list(argv), False


def _result_id(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"test-{digest[:8]}"


def _ms_timestamp(value: datetime) -> datetime:
    # Stored timestamps have millisecond precision; truncating here keeps a stored result equal to
    # the one we returned.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _split_classname(classname: str, project_path: Path | None) -> tuple[str, str]:
    """pytest's xunit2 reports give ``classname="pkg.test_mod.TestClass"`` and no file: find the
    longest dotted prefix that is a ``.py`` file in the project; the rest is the class path."""
    parts = [p for p in classname.split(".") if p]
    # Dotted module names never hold path separators; one that does must not walk the file system.
    if project_path is not None and not any("/" in p or "\\" in p for p in parts):
        for cut in range(len(parts), 0, -1):
            candidate = Path(*parts[:cut]).with_suffix(".py")
            if (project_path / candidate).is_file():
                return candidate.as_posix(), "::".join(parts[cut:])
    return classname, ""


def _text(element: ET.Element | None) -> str:
    return "" if element is None else (element.text or "")


def parse_junit_xml(
    data: bytes | str,
    *,
    project_path: Path | None = None,
    run_id: str = "",
    timestamp: datetime | None = None,
) -> list[TestResult]:
    """Every ``testcase`` as a ``TestResult``: failure → red, error → error, skipped → not_run, else
    green; ``execution_time`` in milliseconds. Raises ``ET.ParseError`` on malformed XML."""
    root = ET.fromstring(data)
    when = _ms_timestamp(timestamp or _utc_now())
    results: list[TestResult] = []
    for case in root.iter("testcase"):
        name = case.get("name", "")
        classname = case.get("classname", "")
        file_attr = case.get("file")
        if file_attr:
            test_file = file_attr
            module = ".".join(PurePosixPath(file_attr).with_suffix("").parts)
            rest = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
            prefix = "::".join(p for p in rest.split(".") if p)
        else:
            test_file, prefix = _split_classname(classname, project_path)
        # pytest reports a module that fails to import as a case without classname, named after it.
        test_file = test_file or name
        test_name = f"{prefix}::{name}" if prefix else name
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        problem = failure if failure is not None else error
        if failure is not None:
            status = TestStatus.RED
        elif error is not None:
            status = TestStatus.ERROR
        elif skipped is not None:
            status = TestStatus.NOT_RUN
            problem = skipped
        else:
            status = TestStatus.GREEN
        message: str | None = None
        details = ""
        if problem is not None:
            details = _text(problem)
            lines = details.strip().splitlines()
            message = problem.get("message") or (lines[-1] if lines else problem.tag)
        output = "\n".join(
            t for t in (details, _text(case.find("system-out")), _text(case.find("system-err"))) if t.strip()
        )
        try:
            seconds = float(case.get("time", "0") or 0)
        except ValueError:
            seconds = 0.0
        results.append(
            TestResult(
                id=_result_id(run_id, test_file, test_name, str(len(results))),
                test_file=test_file,
                test_name=test_name,
                status=status,
                timestamp=when,
                output=output[-MAX_RESULT_OUTPUT_CHARS:],
                error_message=message,
                execution_time=round(seconds * 1000.0, 3),
            )
        )
    return results


def summarize(results: Sequence[TestResult]) -> str:
    counts = {status: sum(1 for r in results if r.status is status) for status in TestStatus}
    return (
        f"{counts[TestStatus.GREEN]} passed, {counts[TestStatus.RED]} failed, "
        f"{counts[TestStatus.ERROR]} errors, {counts[TestStatus.NOT_RUN]} skipped"
    )


class TestRunner:
    """Runs ``context.test_command`` (or ``default_command``) in the project's path, streams its
    stdout/stderr line by line, and returns the results parsed from JUnit XML.

    pytest commands get ``--junitxml=<tmpfile>`` appended; any command may instead place ``{junit}``
    where the report path belongs. A command that writes no report yields one result for the whole
    run, decided by its exit code, so ``npm test`` and the like still say red or green.

    Skipped tests are left out of the returned results unless ``include_skipped``: the domain calls
    tests passing only when every latest result is green, and a skip marker must not hold a cycle
    in code_green forever. Success means at least one test ran and none failed."""

    __test__ = False
    name = "tests"

    def __init__(
        self,
        default_command: Sequence[str] = DEFAULT_TEST_COMMAND,
        *,
        include_skipped: bool = False,
        clock: Clock = _utc_now,
    ) -> None:
        if isinstance(default_command, str) or not default_command:
            raise ValueError("default_command must be a non-empty list of strings")
        self._default = list(default_command)
        self._include_skipped = include_skipped
        self._clock = clock

    async def run(self, work: AgentWork, context: AgentContext, report: AgentReporter) -> AgentResult:
        if context.project_path is None:
            return AgentResult(success=False, error="The project has no path to run its tests in")
        command = list(context.test_command) if context.test_command else self._default
        scratch = Path(tempfile.mkdtemp(prefix="agent-portal-junit-"))
        try:
            return await self._run(work, context, report, command, context.project_path, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def _run(
        self,
        work: AgentWork,
        context: AgentContext,
        report: AgentReporter,
        command: list[str],
        project_path: Path,
        scratch: Path,
    ) -> AgentResult:
        junit_path = scratch / "junit.xml"
        argv, writes_junit = junit_argv(command, junit_path)
        tail = OutputTail()

        async def on_line(stream: str, line: str) -> None:
            tail.add(stream, line)
            await report.output(stream, line)

        await report.progress(0)
        try:
            outcome = await run_process(
                argv,
                cwd=project_path,
                timeout_seconds=context.timeout_seconds,
                on_line=on_line,
            )
        except OSError as exc:
            return AgentResult(success=False, error=f"Cannot start {argv[0]}: {exc.strerror or exc}")
        if outcome.timed_out:
            return AgentResult(
                success=False,
                output=tail.stdout,
                error=f"Tests timed out after {format_seconds(context.timeout_seconds)} s",
            )
        results, problem = self._results(
            work, argv, project_path, junit_path, writes_junit, outcome.returncode
        )
        if not self._include_skipped:
            results = [r for r in results if r.status is not TestStatus.NOT_RUN]
        for result in results:
            await report.output(
                "test_result", f"{result.status.value} {result.test_file}::{result.test_name}\n"
            )
        await report.progress(100)
        success = bool(results) and all(r.status is TestStatus.GREEN for r in results)
        error = problem
        if error is None and not success:
            error = (
                f"Tests not passing: {summarize(results)}"
                if results
                else f"No tests ran (exit code {outcome.returncode})"
            )
        return AgentResult(
            success=success,
            output=tail.stdout,
            error=None if success else error,
            test_results=results,
        )

    def _results(
        self,
        work: AgentWork,
        argv: list[str],
        project_path: Path,
        junit_path: Path,
        writes_junit: bool,
        returncode: int | None,
    ) -> tuple[list[TestResult], str | None]:
        now = self._clock()
        if writes_junit:
            if not junit_path.is_file():
                return [], f"The test command wrote no JUnit report (exit code {returncode})"
            if junit_path.stat().st_size > MAX_JUNIT_BYTES:
                return [], f"The JUnit report is larger than {MAX_JUNIT_BYTES} bytes"
            try:
                return (
                    parse_junit_xml(
                        junit_path.read_bytes(), project_path=project_path, run_id=work.task_id, timestamp=now
                    ),
                    None,
                )
            except ET.ParseError as exc:
                return [], f"Cannot parse the JUnit report: {exc}"
        whole_run = TestResult(
            id=_result_id(work.task_id, *argv),
            test_file=argv[0],
            test_name=" ".join(argv),
            status=TestStatus.GREEN if returncode == 0 else TestStatus.RED,
            timestamp=_ms_timestamp(now),
            error_message=None if returncode == 0 else f"exit code {returncode}",
        )
        return [whole_run], None
