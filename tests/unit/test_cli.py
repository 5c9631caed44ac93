"""The command line refuses what it cannot do, with a clear message, before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_portal.cli import main


def test_redis_with_sqlite_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:6379/0"]) == 2
    assert "SQLite lives on one machine" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing was created"


def test_an_unreachable_redis_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "serve",
            "--data-dir",
            str(tmp_path),
            "--redis-url",
            "redis://127.0.0.1:1/0",
            "--database-url",
            "postgresql+asyncpg://postgres@127.0.0.1/test",
        ]
    )
    assert code == 2
    assert "cannot reach Redis" in capsys.readouterr().err


def test_token_prints_only_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "token",
                "--user",
                "bot",
                "--role",
                "orchestrator",
                "--project",
                "shop",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.strip()
    assert out.count(".") == 2 and "\n" not in out


def test_project_names_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["project", "add", "bad name!", "--data-dir", str(tmp_path)]) == 2
    assert "1-64" in capsys.readouterr().err
