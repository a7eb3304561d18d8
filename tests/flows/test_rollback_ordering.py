"""Rollback checks every precondition before its first change, and applies the plan's reverse operations."""

from __future__ import annotations

import json
from pathlib import Path

from core.metadata_db import metadata_gateway
from core.migration_commits import commits_of_run, fields_added
from core.migration_lease import read_lease

from .cli_process import run_cli
from .conftest import Workspace
from .helpers import only_report


def test_rollback_checks_before_it_changes_and_removes_the_reverse_of_the_runs_commits(workspace: Workspace) -> None:
    assert workspace.migrate(dry_run=False).state.is_completed()
    (report,) = workspace.reports_dir.glob("migration_report_audit_fields_*.json")
    run_id = json.loads(report.read_text())["run_id"]
    Path(json.loads(report.read_text())["snapshot_path"]).unlink()
    with workspace.gateway() as gateway:
        head_before = gateway.head_commit()
        added = fields_added(commits_of_run(gateway.log(), run_id))

    # a reset that could not be checked afterwards is refused before the branch moves
    refused = run_cli("rollback", "--env", "test", "--report", str(report), "--reset", "--yes")
    assert refused.returncode == 3, refused.stderr[-2000:]
    assert "no readable snapshot" in refused.stderr
    assert "approving" not in refused.stdout, "nobody is asked to approve a rollback that cannot be checked"
    with workspace.gateway() as gateway:
        assert gateway.head_commit() == head_before, "the branch must not be reset before the refusal"
    rollback = only_report(workspace.reports_dir, "rollback_report_audit_fields_")
    assert rollback["status"] == "failed" and rollback["errors"][-1]["category"] == "stopped"
    with metadata_gateway(workspace.settings()) as meta:
        assert read_lease(meta, workspace.database) is None
    for path in workspace.reports_dir.glob("rollback_report_audit_fields_*.json"):
        path.unlink()

    # removing fields: exactly the reverse of what the run's commits added, one commit per type
    done = run_cli("rollback", "--env", "test", "--report", str(report), "--yes")
    assert done.returncode == 0, done.stderr[-2000:]
    rollback = only_report(workspace.reports_dir, "rollback_report_audit_fields_")
    assert {name: set(fields) for name, fields in rollback["removals"].items()} == added
    assert rollback["type_states"] == dict.fromkeys(added, "applied")
    with workspace.gateway() as gateway:
        removed = [
            commit.migration
            for commit in gateway.log()
            if commit.message.startswith("oms-audit: roll back audit fields")
        ]
    assert sorted({op["class"] for ops in removed for op in ops or []}) == sorted(added)
    assert len(removed) == len(added), "one DeleteClassProperty commit per type the run patched"
