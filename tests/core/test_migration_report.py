"""The JSON report: its file name contract, atomic rewrites, and what it refuses to load."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.migration_report import (
    ApprovalSection,
    ErrorEntry,
    MigrationReport,
    load_report,
    report_path,
    save_report,
)

STARTED = datetime(2026, 11, 29, 21, 5, 7, 123456, tzinfo=UTC)


def make_report(**changes: object) -> MigrationReport:
    fields: dict[str, object] = {
        "mode": "dry_run",
        "status": "planned",
        "env": "production",
        "database": "oms",
        "branch": "main",
        "run_id": "run-1",
        "service_account": "svc_deployment",
        "started_at": STARTED,
        "approval": ApprovalSection(required=False),
    }
    fields.update(changes)
    return MigrationReport.model_validate(fields)


def test_report_name_follows_the_guide(tmp_path: Path) -> None:
    path = report_path(tmp_path, STARTED)
    assert path.name == "migration_report_audit_fields_20261129_210507.json"
    assert re.fullmatch(r"migration_report_audit_fields_\d{8}_\d{6}\.json", path.name)


def test_two_runs_in_the_same_second_get_different_files(tmp_path: Path) -> None:
    first, second = report_path(tmp_path, STARTED), report_path(tmp_path, STARTED)
    assert first != second
    assert second.name == "migration_report_audit_fields_20261129_210508.json"


def test_saved_report_has_the_contract_fields(tmp_path: Path) -> None:
    path = save_report(make_report(errors=[ErrorEntry(type="SchemaDrift", message="drifted")]), tmp_path / "r.json")
    data = json.loads(path.read_text())
    for key in (
        "mode",
        "status",
        "env",
        "database",
        "branch",
        "started_at",
        "finished_at",
        "head_commit_before",
        "head_commit_after",
        "plan",
        "approval",
        "validation",
        "errors",
    ):
        assert key in data, key
    assert data["errors"][0]["type"] == "SchemaDrift"
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must not be left behind"


def test_load_report_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_report(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_report(broken)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not an audit-fields migration report"):
        load_report(other)
