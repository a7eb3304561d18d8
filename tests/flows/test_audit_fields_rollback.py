"""Rollback of an audit-fields run: remove exactly what it added, or reset when safe; archive the DLQ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli.flow_runner import FlowOutcome, run_flow
from cli.outcome import failure_of
from core.schema_documents import schema_differences
from core.schema_snapshot import SchemaSnapshot
from flows.audit_fields_rollback import audit_fields_rollback

from .conftest import ENV, Workspace, approve, reject
from .helpers import only_report


def migrated(workspace: Workspace) -> Path:
    outcome = workspace.migrate(dry_run=False)
    assert outcome.state.is_completed(), outcome.state
    (path,) = workspace.reports_dir.glob("migration_report_audit_fields_*.json")
    return path


def roll_back(workspace: Workspace, report: Path, *, answer: Any = approve, **params: Any) -> FlowOutcome:
    parameters = {
        "report": str(report),
        "env": ENV,
        "approval_poll_seconds": 1,
        "reports_dir": str(workspace.reports_dir),
        "dlq_dir": str(workspace.dlq_dir),
        **params,
    }
    return run_flow(audit_fields_rollback, parameters, answer=answer)


def snapshot_of(report: Path) -> SchemaSnapshot:
    return SchemaSnapshot.load(Path(json.loads(report.read_text())["snapshot_path"]))


def test_rollback_removes_exactly_the_added_fields_and_archives_the_dlq(workspace: Workspace) -> None:
    report = migrated(workspace)
    workspace.dlq_dir.mkdir(parents=True)
    (workspace.dlq_dir / "audit_dlq_fallback.jsonl").write_text('{"event_id": "e1"}\n')

    outcome = roll_back(workspace, report)
    assert outcome.state.is_completed(), outcome.state
    with workspace.gateway() as gateway:
        assert schema_differences(snapshot_of(report).schema_documents, gateway.schema()) == []
    rollback = only_report(workspace.reports_dir, "rollback_report_audit_fields_")
    assert rollback["status"] == "succeeded" and rollback["strategy"] == "remove_fields"
    with workspace.gateway() as gateway:
        assert rollback["head_commit_after"] == gateway.head_commit() != rollback["head_commit_before"]
    assert rollback["validation"]["ok"] is True
    archived = [Path(p) for p in rollback["archived_dlq_files"]]
    assert [p.name for p in archived] == ["audit_dlq_fallback.jsonl"]
    assert archived[0].read_text() == '{"event_id": "e1"}\n', "the DLQ is archived, never deleted"


def test_rollback_with_reset_returns_to_the_snapshot_commit(workspace: Workspace) -> None:
    report = migrated(workspace)
    outcome = roll_back(workspace, report, reset=True)
    assert outcome.state.is_completed(), outcome.state
    with workspace.gateway() as gateway:
        assert gateway.head_commit() == snapshot_of(report).head_commit
    rollback = only_report(workspace.reports_dir, "rollback_report_audit_fields_")
    assert rollback["strategy"] == "reset" and rollback["validation"]["ok"] is True
    assert rollback["head_commit_after"] == snapshot_of(report).head_commit


def test_reset_is_refused_when_commits_followed_the_migration(workspace: Workspace) -> None:
    report = migrated(workspace)
    with workspace.gateway() as gateway:
        gateway.insert_documents(
            [{"@type": "Class", "@id": "Later", "name": "xsd:string"}], author="x", message="later", graph_type="schema"
        )
        head = gateway.head_commit()
    outcome = roll_back(workspace, report, reset=True)
    assert outcome.state.is_failed() and type(failure_of(outcome.state)).__name__ == "RollbackRefused"
    assert outcome.answered is None
    with workspace.gateway() as gateway:
        assert gateway.head_commit() == head


def test_rejected_rollback_changes_nothing(workspace: Workspace) -> None:
    report = migrated(workspace)
    with workspace.gateway() as gateway:
        head = gateway.head_commit()
    outcome = roll_back(workspace, report, answer=reject)
    assert outcome.state.is_cancelled()
    with workspace.gateway() as gateway:
        assert gateway.head_commit() == head
    rollback = only_report(workspace.reports_dir, "rollback_report_audit_fields_")
    assert rollback["status"] == "rejected" and rollback["approval"]["approver"] == "bob"


def test_dry_run_report_has_nothing_to_roll_back(workspace: Workspace) -> None:
    assert workspace.migrate(dry_run=True).state.is_completed()
    (report,) = workspace.reports_dir.glob("migration_report_audit_fields_*.json")
    outcome = roll_back(workspace, report)
    assert outcome.state.is_failed()
    assert "dry-run report" in str(failure_of(outcome.state))


def add_class(workspace: Workspace, name: str) -> None:
    with workspace.gateway() as gateway:
        gateway.insert_documents(
            [{"@type": "Class", "@id": name, "name": "xsd:string"}], author="x", message="later", graph_type="schema"
        )


def test_removing_fields_keeps_later_schema_changes(workspace: Workspace) -> None:
    report = migrated(workspace)
    add_class(workspace, "Later")
    outcome = roll_back(workspace, report)
    assert outcome.state.is_completed(), outcome.state
    with workspace.gateway() as gateway:
        schema = gateway.schema()
    assert schema_differences(snapshot_of(report).schema_documents, schema) == ["Later: unexpected"]


def test_rollback_in_another_env_is_refused(workspace: Workspace) -> None:
    report = migrated(workspace)
    outcome = roll_back(workspace, report, env="staging")
    assert outcome.state.is_failed()
    assert "pass --env test" in str(failure_of(outcome.state))


def test_rollback_from_a_schema_snapshot(workspace: Workspace) -> None:
    report = migrated(workspace)
    outcome = roll_back(workspace, Path(json.loads(report.read_text())["snapshot_path"]))
    assert outcome.state.is_completed(), outcome.state
    with workspace.gateway() as gateway:
        assert schema_differences(snapshot_of(report).schema_documents, gateway.schema()) == []


def test_schema_change_while_the_rollback_waits_stops_it(workspace: Workspace) -> None:
    report = migrated(workspace)

    def change_then_approve(description: str) -> dict[str, Any]:
        add_class(workspace, "WhileWaiting")
        return approve(description)

    with workspace.gateway() as gateway:
        patched = gateway.schema()
    outcome = roll_back(workspace, report, answer=change_then_approve, reset=True)
    assert outcome.state.is_failed() and type(failure_of(outcome.state)).__name__ == "RollbackRefused"
    with workspace.gateway() as gateway:
        assert schema_differences(patched, gateway.schema()) == ["WhileWaiting: unexpected"], "nothing was reset"
