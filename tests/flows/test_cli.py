"""The CLI and the guide's migration command, as a user runs them: arguments in, exit code and files out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from cli.main import main

from .conftest import Workspace
from .helpers import document_classes, missing_audit_fields, only_report

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(args))


def test_guide_command_works_verbatim(workspace: Workspace) -> None:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    script = [sys.executable, "migrations/production_audit_fields_migration.py", "--env", "production"]
    dry = subprocess.run([*script, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "migration_report_audit_fields_" in dry.stdout
    assert only_report(workspace.reports_dir)["mode"] == "dry_run"

    # "The script will ask for confirmation before proceeding": answered on its standard input
    run = subprocess.run(
        [*script, "--execute"],
        cwd=ROOT,
        env=env,
        input="y\nreviewed the dry run\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Apply this plan?" in run.stdout
    with workspace.gateway() as gateway:
        schema = gateway.schema()
    assert all(missing_audit_fields(schema, name) == [] for name in document_classes(schema))


def test_execute_asks_at_the_terminal_and_a_no_exits_3(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    code = cli("migrate", "--env", "test", "--execute", stdin="n\nnot today\n", monkeypatch=monkeypatch)
    assert code == 3
    report = only_report(workspace.reports_dir)
    assert report["status"] == "rejected" and report["approval"]["comment"] == "not today"
    assert report["approval"]["via"] == "cli"


def test_execute_confirmed_at_the_terminal_exits_0(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    code = cli("migrate", "--env", "test", "--execute", stdin="y\nship it\n", monkeypatch=monkeypatch)
    assert code == 0
    report = only_report(workspace.reports_dir)
    assert report["status"] == "succeeded" and report["approval"]["decision"] == "approve"


def test_no_terminal_answer_rejects_rather_than_hangs(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("migrate", "--env", "test", "--execute", stdin="", monkeypatch=monkeypatch) == 3
    assert "--yes" in only_report(workspace.reports_dir)["approval"]["comment"]


@pytest.mark.parametrize("args", [["--dry-run", "--execute"], []])
def test_mode_must_be_chosen_exactly_once(args: list[str], capsys: Any) -> None:
    assert cli("migrate", *args) == 2
    assert "exactly one of --dry-run or --execute" in capsys.readouterr().err


def test_bad_configuration_exits_2_naming_the_variable(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from blocks.environment import resolve_terminus

    monkeypatch.setenv("TERMINUS_DB_URL", "terminus.example")
    resolve_terminus.cache_clear()
    assert cli("migrate", "--env", "test", "--dry-run") == 2
    assert "TERMINUS_DB_URL" in capsys.readouterr().err


def test_unreachable_server_exits_1(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from blocks.environment import resolve_terminus

    monkeypatch.setenv("TERMINUS_DB_URL", "http://127.0.0.1:9")
    resolve_terminus.cache_clear()
    assert cli("migrate", "--env", "test", "--dry-run") == 1
    assert "127.0.0.1:9" in capsys.readouterr().err


def test_history_lists_the_runs(workspace: Workspace, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.render import console

    monkeypatch.setattr(console, "width", 250)
    assert cli("migrate", "--env", "test", "--dry-run") == 0
    capsys.readouterr()
    assert cli("history", "--env", "test") == 0
    out = capsys.readouterr().out
    assert workspace.database in out and "dry_run" in out and "planned" in out


def test_rollback_command(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("migrate", "--env", "test", "--execute", "--yes") == 0
    (report,) = workspace.reports_dir.glob("migration_report_audit_fields_*.json")
    assert cli("rollback", "--env", "test", "--report", str(report), "--yes") == 0
    assert cli("rollback", "--env", "test", "--report", str(report.with_name("nope.json")), "--yes") == 2
    with workspace.gateway() as gateway:
        schema = gateway.schema()
    assert all(missing_audit_fields(schema, name) for name in document_classes(schema))
