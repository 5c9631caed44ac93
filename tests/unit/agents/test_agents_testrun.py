"""The test runner: a real pytest project run for real, and the JUnit XML parsing behind it."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agents_fakes import RecordingReporter, phase_work

from agent_portal.agents import testrun
from agent_portal.agents.base import AgentContext
from agent_portal.agents.testrun import TestRunner, is_pytest, junit_argv, parse_junit_xml
from agent_portal.domain.models import TDDState, TestStatus

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
RUN = phase_work(TDDState.TEST_RED, kind="run_tests", task_id="run-00000001", command="run_tests")


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    # Pins pytest's rootdir to the project, whatever lies above tmp_path.
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "tests" / "test_calc.py").write_text(
        textwrap.dedent(
            """
            class TestCalc:
                def test_adds(self):
                    assert 1 + 1 == 2


            def test_subtracts():
                assert 2 - 1 == 0, "subtraction is broken"
            """
        )
    )
    return project


def _context(project: Path | None, command: list[str] | None = None, timeout: float = 60) -> AgentContext:
    return AgentContext(project_path=project, timeout_seconds=timeout, test_command=command)


async def test_a_real_pytest_run_streams_its_output_and_parses_its_results(tmp_path: Path) -> None:
    project = _project(tmp_path)
    reporter = RecordingReporter()
    result = await TestRunner(clock=lambda: T0).run(RUN, _context(project), reporter)

    stdout = reporter.lines("stdout")
    assert all(line.endswith("\n") for line in stdout)
    assert any(line.startswith("FAILED tests/test_calc.py::test_subtracts") for line in stdout)
    assert any("1 failed, 1 passed" in line for line in stdout)
    assert "1 failed, 1 passed" in result.output

    by_name = {r.test_name: r for r in result.test_results}
    assert set(by_name) == {"TestCalc::test_adds", "test_subtracts"}
    passed, failed = by_name["TestCalc::test_adds"], by_name["test_subtracts"]
    assert passed.test_file == failed.test_file == "tests/test_calc.py"
    assert passed.status is TestStatus.GREEN and passed.error_message is None
    assert failed.status is TestStatus.RED
    assert failed.error_message is not None and "subtraction is broken" in failed.error_message
    assert "assert 2 - 1 == 0" in failed.output
    assert all(0 <= r.execution_time < 60_000 for r in result.test_results)
    assert all(r.timestamp == T0 for r in result.test_results)

    assert reporter.lines("test_result") == [
        "green tests/test_calc.py::TestCalc::test_adds\n",
        "red tests/test_calc.py::test_subtracts\n",
    ]
    assert reporter.progress_values == [0, 100]
    assert not result.success
    assert result.error == "Tests not passing: 1 passed, 1 failed, 0 errors, 0 skipped"
    # The report went to a scratch directory, not into the project.
    assert not list(project.rglob("*.xml"))


async def test_junit_placeholder_and_a_green_run(tmp_path: Path) -> None:
    project = _project(tmp_path)
    command = [sys.executable, "-m", "pytest", "-q", "--junitxml={junit}", "-k", "adds"]
    result = await TestRunner().run(RUN, _context(project, command), RecordingReporter())
    assert result.success and result.error is None
    assert [(r.test_name, r.status) for r in result.test_results] == [
        ("TestCalc::test_adds", TestStatus.GREEN)
    ]


@pytest.mark.parametrize(
    ("code", "status", "success"), [(0, TestStatus.GREEN, True), (1, TestStatus.RED, False)]
)
async def test_a_command_without_junit_gives_one_result_by_exit_code(
    tmp_path: Path, code: int, status: TestStatus, success: bool
) -> None:
    command = [sys.executable, "-c", f"print('checked'); raise SystemExit({code})"]
    reporter = RecordingReporter()
    result = await TestRunner().run(RUN, _context(tmp_path, command), reporter)
    assert reporter.lines("stdout") == ["checked\n"]
    assert [r.status for r in result.test_results] == [status]
    assert result.test_results[0].test_file == sys.executable
    assert result.success is success


async def test_timeout(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; print('slow', flush=True); time.sleep(30)"]
    result = await TestRunner().run(RUN, _context(tmp_path, command, timeout=0.5), RecordingReporter())
    assert not result.success and result.error == "Tests timed out after 0.5 s"
    assert result.output == "slow\n"


async def test_without_a_project_path(tmp_path: Path) -> None:
    result = await TestRunner().run(RUN, _context(None), RecordingReporter())
    assert not result.success and result.error == "The project has no path to run its tests in"


def _writer(xml: str) -> list[str]:
    """A stand-in test command that writes the given report where ``{junit}`` says."""
    return [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", "{junit}", xml]


async def test_skipped_tests_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    xml = (
        '<testsuite><testcase classname="t" name="test_a" time="0.1"/>'
        '<testcase classname="t" name="test_b" time="0"><skipped message="later"/></testcase></testsuite>'
    )
    result = await TestRunner().run(RUN, _context(tmp_path, _writer(xml)), RecordingReporter())
    assert result.success and [r.test_name for r in result.test_results] == ["test_a"]
    result = await TestRunner(include_skipped=True).run(
        RUN, _context(tmp_path, _writer(xml)), RecordingReporter()
    )
    assert [r.status for r in result.test_results] == [TestStatus.GREEN, TestStatus.NOT_RUN]


async def test_missing_malformed_or_oversized_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = [sys.executable, "-c", "import sys; sys.argv[1]", "{junit}"]
    result = await TestRunner().run(RUN, _context(tmp_path, silent), RecordingReporter())
    assert not result.success and result.error == "The test command wrote no JUnit report (exit code 0)"

    result = await TestRunner().run(RUN, _context(tmp_path, _writer("<testsuite><oops")), RecordingReporter())
    assert not result.success and result.error is not None
    assert result.error.startswith("Cannot parse the JUnit report")

    monkeypatch.setattr(testrun, "MAX_JUNIT_BYTES", 10)
    result = await TestRunner().run(RUN, _context(tmp_path, _writer("<testsuite/>" * 5)), RecordingReporter())
    assert not result.success and result.error == "The JUnit report is larger than 10 bytes"


def test_which_commands_are_pytest() -> None:
    assert is_pytest(["pytest", "-q"]) and is_pytest(["/venv/bin/py.test"])
    assert is_pytest(["/usr/bin/python3", "-m", "pytest"])
    assert not is_pytest(["npm", "test"]) and not is_pytest(["python", "-m", "unittest", "pytest"])
    argv, writes = junit_argv(["pytest", "-q"], Path("/tmp/r.xml"))
    assert argv == ["pytest", "-q", "--junitxml=/tmp/r.xml"] and writes
    argv, writes = junit_argv(["tox", "--", "--junit={junit}"], Path("/tmp/r.xml"))
    assert argv == ["tox", "--", "--junit=/tmp/r.xml"] and writes
    assert junit_argv(["npm", "test"], Path("/tmp/r.xml")) == (["npm", "test"], False)


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" errors="2" failures="1" skipped="1" tests="6" time="1.5">
    <testcase classname="tests.unit.test_login.TestLogin" name="test_ok" time="0.250"/>
    <testcase classname="tests.unit.test_login.TestLogin" name="test_bad_password" time="0.0125">
      <failure message="AssertionError: assert 401 == 200">def test_bad_password():
&gt;       assert response.status == 200
E       AssertionError: assert 401 == 200</failure>
      <system-out>sent request</system-out>
    </testcase>
    <testcase classname="tests.unit.test_login" name="test_fixture" time="0.001">
      <error>fixture 'db' not found
E       fixture 'db' not found</error>
    </testcase>
    <testcase classname="tests.unit.test_login" name="test_later" time="0">
      <skipped type="pytest.skip" message="not yet">tests/unit/test_login.py:30: not yet</skipped>
    </testcase>
    <testcase classname="" name="tests.unit.test_broken" time="0.000">
      <error message="collection failure">ImportError: no module named app</error>
    </testcase>
    <testcase classname="elsewhere.Suite" name="test_param[1-2]" time="x"/>
  </testsuite>
</testsuites>
"""


def test_parse_junit_statuses_names_times_and_messages(tmp_path: Path) -> None:
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_login.py").write_text("")
    results = parse_junit_xml(JUNIT, project_path=tmp_path, run_id="run-1", timestamp=T0)
    assert [(r.test_file, r.test_name, r.status) for r in results] == [
        ("tests/unit/test_login.py", "TestLogin::test_ok", TestStatus.GREEN),
        ("tests/unit/test_login.py", "TestLogin::test_bad_password", TestStatus.RED),
        ("tests/unit/test_login.py", "test_fixture", TestStatus.ERROR),
        ("tests/unit/test_login.py", "test_later", TestStatus.NOT_RUN),
        ("tests.unit.test_broken", "tests.unit.test_broken", TestStatus.ERROR),
        ("elsewhere.Suite", "test_param[1-2]", TestStatus.GREEN),
    ]
    ok, bad, fixture, later, broken, param = results
    assert [r.execution_time for r in results] == [250.0, 12.5, 1.0, 0.0, 0.0, 0.0]
    assert ok.error_message is None and ok.output == ""
    assert bad.error_message == "AssertionError: assert 401 == 200"
    assert "> " in bad.output and "sent request" in bad.output
    assert fixture.error_message == "E       fixture 'db' not found"
    assert later.error_message == "not yet"
    assert broken.error_message == "collection failure"
    assert param.error_message is None
    assert len({r.id for r in results}) == len(results)
    assert all(r.id.startswith("test-") and len(r.id) == 13 for r in results)
    assert [r.id for r in parse_junit_xml(JUNIT, project_path=tmp_path, run_id="run-1")] == [
        r.id for r in results
    ]
    assert all(r.timestamp == T0 for r in results)


def test_parse_junit_file_attribute_of_xunit1() -> None:
    xml = (
        '<testsuite><testcase classname="tests.test_api.TestApi" file="tests/test_api.py" '
        'line="3" name="test_get" time="1.5"/></testsuite>'
    )
    (result,) = parse_junit_xml(xml)
    assert (result.test_file, result.test_name, result.execution_time) == (
        "tests/test_api.py",
        "TestApi::test_get",
        1500.0,
    )


def test_parse_junit_rejects_malformed_xml() -> None:
    with pytest.raises(testrun.ET.ParseError):
        parse_junit_xml("<testsuite><testcase")
