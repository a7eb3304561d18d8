"""The audit-fields migration flow against the sandbox TerminusDB and Prefect's test API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.migration_lease import acquire_lease
from core.run_history import get_run
from tests.conftest import ADMIN_TOKEN

from .conftest import Workspace, approve, reject
from .helpers import (
    artifacts_of,
    document_classes,
    missing_audit_fields,
    only_report,
    read_report,
    task_runs_of,
)

ARTIFACT_KINDS = ("plan", "plan-types", "snapshot", "progress", "report", "report-json")


def read_flow_run(flow_run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def head(space: Workspace) -> str:
    with space.gateway() as gateway:
        return gateway.head_commit()


def schema_of(space: Workspace) -> list[dict[str, Any]]:
    with space.gateway() as gateway:
        return gateway.schema()


def error_type(outcome: Any) -> str:
    from cli.outcome import failure_of

    error = failure_of(outcome.state)
    return type(error).__name__


def test_dry_run_plans_reports_and_changes_nothing(workspace: Workspace) -> None:
    before = head(workspace)
    outcome = workspace.migrate(dry_run=True)
    assert outcome.state.is_completed(), outcome.state
    assert outcome.answered is None, "a dry run must not pause for approval"
    assert head(workspace) == before
    report = only_report(workspace.reports_dir)
    assert report["mode"] == "dry_run" and report["status"] == "planned"
    assert report["head_commit_before"] == before and report["database"] == workspace.database
    actions = {t["name"]: t["action"] for t in report["plan"]["types"]}
    assert "patch" in actions.values() and "covered_by_parent" in actions.values()
    assert all(action in {"patch", "covered_by_parent", "already_present", "skip"} for action in actions.values())
    assert report["plan"]["estimated_duration_seconds"] > 0
    assert len(report["plan"]["fingerprint"]) == 64
    assert report["snapshot_path"] and read_report(report["snapshot_path"])["head_commit"] == before
    assert ADMIN_TOKEN not in (workspace.reports_dir / Path(report["snapshot_path"]).name).read_text()
    assert ADMIN_TOKEN not in str(report), "no secret may appear in a report"


def test_execute_approved_gives_every_document_type_the_six_fields(workspace: Workspace) -> None:
    with workspace.gateway() as gateway:
        documents_before = list(gateway.iter_documents())
    outcome = workspace.migrate(dry_run=False)
    assert outcome.state.is_completed(), outcome.state
    assert outcome.answered and outcome.answered["decision"] == "approve"

    schema = schema_of(workspace)
    for name in document_classes(schema):
        assert missing_audit_fields(schema, name) == [], name
    report = only_report(workspace.reports_dir)
    assert report["status"] == "succeeded" and report["validation"]["ok"] is True
    assert {c["name"] for c in report["validation"]["checks"]} >= {
        "audit_fields_present",
        "document_counts_unchanged",
        "sample_stamped_write",
        "scratch_branch_removed",
    }
    assert report["approval"] == report["approval"] | {"decision": "approve", "approver": "alice", "via": "test"}
    patched = [t["name"] for t in report["plan"]["types"] if t["action"] == "patch"]
    assert all(t["state"] == "applied" for t in report["plan"]["types"] if t["action"] == "patch")

    with workspace.gateway() as gateway:
        commits = [c for c in gateway.log() if c.author == "svc_deployment"]
        documents_after = list(gateway.iter_documents())
        # every existing document is still valid under the new schema: writing it back is accepted
        gateway.replace_documents(documents_after, author="test", message="rewrite all documents")
    assert len(commits) == len(patched), "one commit per patched type"
    names = {run.name for run in task_runs_of(outcome.flow_run_id)}
    assert {f"patch-{name}" for name in patched} <= names
    keyed = [f"audit-fields-{kind}-{workspace.database.replace('_', '-')}" for kind in ARTIFACT_KINDS]
    artifacts = artifacts_of(outcome.flow_run_id)
    assert set(keyed) <= {artifact.key for artifact in artifacts}
    assert all(artifact.key for artifact in artifacts), "every artifact is keyed (no untitled cards)"
    assert not any("file://" in str(artifact.data) for artifact in artifacts), "a browser cannot open file links"
    [report_json] = [a for a in artifacts if a.key == keyed[ARTIFACT_KINDS.index("report-json")]]
    assert f'"run_id": "{report["run_id"]}"' in str(report_json.data)
    fingerprint = report["plan"]["fingerprint"]
    assert read_flow_run(outcome.flow_run_id).name == f"audit-fields-{workspace.database}-execute-{fingerprint[:8]}"
    assert all(report["run_id"] in c.message for c in commits)
    assert sorted(op["class"] for c in commits for op in (c.migration or [])[:1]) == sorted(patched)
    assert len(documents_after) == len(documents_before)

    with metadata_gateway(workspace.settings()) as meta:
        run = get_run(meta, report["run_id"])
    assert run is not None and run.status == "succeeded" and run.approved_by == "alice"
    assert run.fingerprint == report["plan"]["fingerprint"]
    assert set(run.type_states.values()) == {"applied"}


def test_rejection_cancels_the_run_and_changes_nothing(workspace: Workspace) -> None:
    before = head(workspace)
    outcome = workspace.migrate(dry_run=False, answer=reject)
    assert outcome.state.is_cancelled(), outcome.state
    assert "not during the release freeze" in (outcome.state.message or "")
    assert head(workspace) == before
    report = only_report(workspace.reports_dir)
    assert report["status"] == "rejected"
    assert report["approval"]["decision"] == "reject" and report["approval"]["approver"] == "bob"
    with metadata_gateway(workspace.settings()) as meta:
        run = get_run(meta, report["run_id"])
    assert run is not None and run.status == "rejected" and run.approved_by is None


def test_approval_timeout_fails_the_run_and_changes_nothing(workspace: Workspace) -> None:
    before = head(workspace)
    outcome = workspace.migrate(dry_run=False, answer=None, approval_timeout_seconds=2)
    assert outcome.state.is_failed(), outcome.state
    assert head(workspace) == before
    report = only_report(workspace.reports_dir)
    assert report["status"] == "failed" and report["approval"]["timed_out"] is True
    assert report["errors"][-1]["type"] == "ApprovalTimedOut"
    with metadata_gateway(workspace.settings()) as meta:
        run = get_run(meta, report["run_id"])
    assert run is not None and run.status == "timed_out"


def test_schema_drift_after_the_plan_stops_before_any_change(workspace: Workspace) -> None:
    def change_schema_then_approve(description: str) -> dict[str, Any]:
        with workspace.gateway() as gateway:
            gateway.insert_documents(
                [{"@type": "Class", "@id": "LateArrival", "name": "xsd:string"}],
                author="someone",
                message="schema changed while the plan waited",
                graph_type="schema",
            )
        return approve(description)

    outcome = workspace.migrate(dry_run=False, answer=change_schema_then_approve)
    assert outcome.state.is_failed()
    assert error_type(outcome) == "SchemaDrift"
    schema = schema_of(workspace)
    assert all(missing_audit_fields(schema, name) for name in document_classes(schema)), "nothing may be patched"
    report = only_report(workspace.reports_dir)
    assert report["errors"][-1]["type"] == "SchemaDrift"


def test_approval_of_another_plan_is_refused_and_the_run_keeps_waiting(workspace: Workspace) -> None:
    before = head(workspace)

    def approve_old_plan(description: str) -> dict[str, Any]:
        return approve(description) | {"plan": "0" * 8}

    outcome = workspace.migrate(dry_run=False, answer=approve_old_plan, approval_timeout_seconds=6)
    assert outcome.state.is_failed()  # the server words a timed-out pause itself; the report says why
    report = only_report(workspace.reports_dir)
    assert report["errors"][-1]["type"] == "ApprovalTimedOut"
    [refusal] = report["approval"]["refused"]
    assert "plan fingerprint typed (00000000) is not this plan's" in refusal
    assert head(workspace) == before


def test_rerun_after_injected_failures_finishes_with_one_commit_per_type(workspace: Workspace, faults: Any) -> None:
    # the plan's timing dry run and the first patch go through; then every migration call fails with 503
    faults(method="POST", path_prefix="/api/migration/", after=2, times=4, action="status", status=503)
    first = workspace.migrate(dry_run=False)
    assert first.state.is_failed() and error_type(first) == "TerminusServerError"
    failed_patch = [run for run in task_runs_of(first.flow_run_id) if run.state and run.state.is_failed()]
    assert [run.run_count for run in failed_patch] == [4], "a 503 is retried three times with backoff"
    failed_report = only_report(workspace.reports_dir)
    states = [t["state"] for t in failed_report["plan"]["types"] if t["action"] == "patch"]
    assert states.count("applied") == 1 and "failed" in states

    second = workspace.migrate(dry_run=False)
    assert second.state.is_completed(), second.state
    schema = schema_of(workspace)
    for name in document_classes(schema):
        assert missing_audit_fields(schema, name) == [], name
    with workspace.gateway() as gateway:
        created = [
            (op["class"], op["property"])
            for commit in gateway.log()
            if commit.author == "svc_deployment"
            for op in commit.migration or []
        ]
        patch_commits = [c for c in gateway.log() if c.author == "svc_deployment"]
    assert len(created) == len(set(created)), "no property may be created twice"
    assert len(patch_commits) == len({cls for cls, _ in created}), "one commit per type"


def test_second_run_fails_fast_while_the_lease_is_held(workspace: Workspace) -> None:
    settings = workspace.settings()
    with metadata_gateway(settings) as meta:
        ensure_metadata_db(meta, settings)
        acquire_lease(meta, database=workspace.database, owner="carol", run_id="other-run", ttl_seconds=600)
    before = head(workspace)
    outcome = workspace.migrate(dry_run=False)
    assert outcome.state.is_failed() and error_type(outcome) == "LeaseHeld"
    assert outcome.answered is None, "the run must stop before asking for approval"
    assert "carol" in str(only_report(workspace.reports_dir)["errors"])
    assert head(workspace) == before


def test_conflicting_audit_field_blocks_the_plan(workspace: Workspace) -> None:
    with workspace.gateway() as gateway:
        gateway.insert_documents(
            [{"@type": "Class", "@id": "Legacy", "_created_at": "xsd:string"}],
            author="test",
            message="a class with a clashing audit field",
            graph_type="schema",
        )
    outcome = workspace.migrate(dry_run=True)
    assert outcome.state.is_failed() and error_type(outcome) == "PlanConflict"
    report = only_report(workspace.reports_dir)
    assert "Legacy" in report["errors"][-1]["message"] and "_created_at" in report["errors"][-1]["message"]


def test_unknown_include_type_is_a_clear_error(workspace: Workspace) -> None:
    outcome = workspace.migrate(dry_run=True, include=["NoSuchType"])
    assert outcome.state.is_failed() and error_type(outcome) == "UnknownTypes"
    assert "NoSuchType" in only_report(workspace.reports_dir)["errors"][-1]["message"]


def test_exclusions_are_left_alone(workspace: Workspace) -> None:
    dry = workspace.migrate(dry_run=True)
    patched = [t["name"] for t in only_report(workspace.reports_dir)["plan"]["types"] if t["action"] == "patch"]
    assert dry.state.is_completed() and patched
    excluded = patched[0]
    for report in workspace.reports_dir.glob("*.json"):
        report.unlink()
    outcome = workspace.migrate(dry_run=False, exclude=[excluded])
    assert outcome.state.is_completed(), outcome.state
    schema = schema_of(workspace)
    assert missing_audit_fields(schema, excluded), f"{excluded} was excluded"
    assert all(missing_audit_fields(schema, name) == [] for name in patched[1:]), "the others were patched"


def test_unreachable_terminusdb_fails_with_a_clear_error(workspace: Workspace, monkeypatch: Any) -> None:
    from blocks.environment import resolve_terminus

    monkeypatch.setenv("TERMINUS_DB_URL", "http://127.0.0.1:9")
    resolve_terminus.cache_clear()
    outcome = workspace.migrate(dry_run=True)
    assert outcome.state.is_failed() and error_type(outcome) == "TerminusUnreachable"
    message = only_report(workspace.reports_dir)["errors"][-1]["message"]
    assert "127.0.0.1:9" in message and "sandbox" in message


def test_nothing_to_do_succeeds_without_asking(workspace: Workspace) -> None:
    assert workspace.migrate(dry_run=False).state.is_completed()
    for report in workspace.reports_dir.glob("*.json"):
        report.unlink()
    before = head(workspace)
    again = workspace.migrate(dry_run=False)
    assert again.state.is_completed() and again.answered is None
    assert head(workspace) == before
    assert only_report(workspace.reports_dir)["status"] == "succeeded"


def test_wrong_credentials_fail_without_retrying(workspace: Workspace, monkeypatch: Any) -> None:
    from blocks.environment import resolve_terminus

    monkeypatch.setenv("TERMINUS_DB_TOKEN", "not-a-valid-token")
    resolve_terminus.cache_clear()
    outcome = workspace.migrate(dry_run=True)
    assert outcome.state.is_failed() and error_type(outcome) == "AuthenticationFailed"
    message = only_report(workspace.reports_dir)["errors"][-1]["message"]
    assert "TERMINUS_DB_TOKEN" in message and "not-a-valid-token" not in message
    (snapshot,) = [run for run in task_runs_of(outcome.flow_run_id) if run.name.startswith("snapshot")]
    assert snapshot.run_count == 1, "a 401 is not transient: no retry"


@pytest.mark.parametrize(("parameter", "error"), [("database", "DatabaseNotFound"), ("branch", "BranchNotFound")])
def test_missing_database_or_branch_is_named(workspace: Workspace, parameter: str, error: str) -> None:
    outcome = workspace.migrate(dry_run=True, **{parameter: "no_such_thing"})
    assert outcome.state.is_failed() and error_type(outcome) == error
    assert "no_such_thing" in only_report(workspace.reports_dir)["errors"][-1]["message"]


def test_user_without_schema_rights(workspace: Workspace, monkeypatch: Any) -> None:
    from blocks.environment import resolve_terminus

    monkeypatch.setenv("TERMINUS_DB_TOKEN", "writer-token")  # may write documents, not the schema
    resolve_terminus.cache_clear()
    before = head(workspace)
    dry = workspace.migrate(dry_run=True)
    assert dry.state.is_completed(), "a dry run still shows the plan"
    report = only_report(workspace.reports_dir)
    assert report["status"] == "planned" and "schema:admin" in report["warnings"][0]
    for path in workspace.reports_dir.glob("*.json"):
        path.unlink()

    run = workspace.migrate(dry_run=False)
    assert run.state.is_failed() and error_type(run) == "PermissionDenied"
    assert run.answered is None, "nobody is asked to approve a plan that cannot be applied"
    assert "schema:admin" in only_report(workspace.reports_dir)["errors"][-1]["message"]
    assert head(workspace) == before


def test_empty_schema_has_nothing_to_do(workspace: Workspace, make_db: Any, monkeypatch: Any) -> None:
    from blocks.environment import resolve_terminus

    empty = make_db("empty")
    monkeypatch.setenv("TERMINUS_DB_NAME", empty)
    resolve_terminus.cache_clear()
    dry = workspace.migrate(dry_run=True)
    assert dry.state.is_completed()
    report = only_report(workspace.reports_dir)
    assert report["plan"]["operations"] == 0 and [t["name"] for t in report["plan"]["types"]] == ["@context"]
    assert workspace.migrate(dry_run=False).state.is_completed()


def test_document_writes_while_waiting_for_approval_are_not_drift(workspace: Workspace) -> None:
    def write_a_document_then_approve(description: str) -> dict[str, Any]:
        with workspace.gateway() as gateway:
            document = next(iter(gateway.iter_documents(doc_type="ObjectType")))
            gateway.replace_documents(
                [document | {"label": "renamed while the plan waited"}], author="app", message="w"
            )
        return approve(description)

    outcome = workspace.migrate(dry_run=False, answer=write_a_document_then_approve)
    assert outcome.state.is_completed(), outcome.state
    report = only_report(workspace.reports_dir)
    with workspace.gateway() as gateway:
        log = gateway.log()
    assert report["head_commit_after"] == log[0].id and log[0].author == "svc_deployment"


def test_lease_left_by_a_run_that_ended_is_taken_over(workspace: Workspace) -> None:
    ended = workspace.migrate(dry_run=True)  # stands for a run that died holding the lease
    assert ended.state.is_final()
    settings = workspace.settings()
    with metadata_gateway(settings) as meta:
        ensure_metadata_db(meta, settings)
        acquire_lease(meta, database=workspace.database, owner="dave", run_id=str(ended.flow_run_id), ttl_seconds=600)
    outcome = workspace.migrate(dry_run=False)
    assert outcome.state.is_completed(), outcome.state


def test_ctrl_c_at_the_terminal_cancels_the_run_and_frees_the_lease(workspace: Workspace) -> None:
    from prefect.client.orchestration import get_client

    from cli.flow_runner import run_flow
    from flows.audit_fields_migration import audit_fields_migration

    def interrupt_once_paused(flow_run_id: Any) -> None:
        if flow_run_id is not None:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_paused():
                seen.append(flow_run_id)
                raise KeyboardInterrupt

    seen: list[Any] = []
    parameters = {
        "env": "test",
        "dry_run": False,
        "approval_poll_seconds": 1,
        "approval_timeout_seconds": 20,
        "reports_dir": str(workspace.reports_dir),
    }
    with pytest.raises(KeyboardInterrupt):
        run_flow(audit_fields_migration, parameters, answer=None, on_tick=interrupt_once_paused)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(seen[0]).state
    assert state is not None and state.is_cancelled(), state

    # the interrupted run still holds the lease (its thread lives on in this test process), yet a new run
    # may take it over at once: the holder's flow run has ended
    again = workspace.migrate(dry_run=False)
    assert again.state.is_completed(), again.state
