"""The JSON report: its file name contract, atomic rewrites, and what it refuses to load."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import ConfigError, RollbackRefused
from core.migration_report import (
    ApprovalSection,
    ErrorEntry,
    MigrationReport,
    report_path,
    save_report,
)
from core.rollback_plan import load_rollback_source

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


def test_rollback_source_explains_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_rollback_source(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_rollback_source(broken)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="neither an audit-fields migration report nor a schema snapshot"):
        load_rollback_source(other)
    dry = save_report(make_report(), tmp_path / "dry.json")
    with pytest.raises(RollbackRefused, match="dry-run report"):
        load_rollback_source(dry)
