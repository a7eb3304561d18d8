"""Roll back an audit-fields run: the guide's rollback plan, approved like the migration itself.

From the run's report: plan the reverse (remove exactly the fields it added, or reset to the snapshot's
commit when asked and safe), pause for approval, apply it one commit per type, check the schema equals the
snapshot's again, archive (never delete) the DLQ, and write a rollback report.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from core.dlq_archive import archive_dlq_files
from core.errors import ApprovalTimedOut, MigrationValidationFailed, StaleApproval
from core.migration_report import (
    ROLLBACK_REPORT_PREFIX,
    ApprovalSection,
    ErrorEntry,
    RollbackReport,
    load_report,
    report_path,
    save_report,
    utc_now,
)
from core.rollback_plan import plan_rollback
from core.settings import MigrationSettings, MonitoringSettings, load_settings
from tasks.approval import request_approval
from tasks.rollback_tasks import apply_removal, reset_branch, validate_against_snapshot
from tasks.run_tracking import RunTracker, migration_lease
from tasks.schema_tasks import read_consistent_schema
from tasks.terminus_target import Target, open_gateway


@flow(name="audit-fields-rollback", flow_run_name="audit-fields-rollback-{env}")
def audit_fields_rollback(
    report: str,
    env: str = "local",
    reset: bool = False,
    approval_timeout_seconds: int = 86400,
    approval_poll_seconds: int = 5,
    reports_dir: str | None = None,
    dlq_dir: str | None = None,
    service_account: str | None = None,
    triggered_by: str | None = None,
) -> dict[str, Any] | State[Any]:
    """Undo an audit-fields migration described by its JSON report.

    Args:
        report: Path of the migration's JSON report (migration_report_audit_fields_<timestamp>.json).
        env: Environment name (TerminusDB connection block of that name, else the environment variables).
        reset: Reset the branch to the snapshot's commit instead of removing fields (refused if commits followed).
        approval_timeout_seconds: How long to wait for an approver before failing, changing nothing.
        approval_poll_seconds: How often the paused run checks for an answer.
        reports_dir: Where the rollback report goes (default: OMS_AUDIT_REPORTS_DIR).
        dlq_dir: DLQ folder whose files are archived (default: OMS_AUDIT_DLQ_DIR).
        service_account: Commit author of the schema changes (default: OMS_AUDIT_SERVICE_ACCOUNT).
        triggered_by: Who started the rollback, for the report (default: the OS user).
    """
    logger = get_run_logger()
    settings = load_settings(MigrationSettings)
    source = load_report(Path(report))
    target = Target(env=env, database=source["database"], branch=source["branch"])
    author = service_account or settings.service_account
    directory = Path(reports_dir) if reports_dir else settings.reports_dir
    run_id = str(flow_run.id or "local")
    started = utc_now()
    path = report_path(directory, started, prefix=ROLLBACK_REPORT_PREFIX)
    with open_gateway(target) as gateway:
        head, schema = read_consistent_schema(gateway)
    rollback = RollbackReport(
        status="running",
        strategy="reset" if reset else "remove_fields",
        source_report=str(report),
        env=env,
        database=target.database,
        branch=target.branch,
        run_id=run_id,
        triggered_by=triggered_by or getpass.getuser(),
        service_account=author,
        started_at=started,
        head_commit_before=head,
        snapshot_path=source.get("snapshot_path"),
        approval=ApprovalSection(required=True, timeout_seconds=approval_timeout_seconds),
    )
    tracker = RunTracker(target, rollback, str(path))
    try:
        plan = plan_rollback(source, source=Path(report).name, current_schema=schema, current_head=head, reset=reset)
        rollback.removals = {r.class_name: sorted(r.fields) for r in plan.removals}
        save_report(rollback, path)
        fingerprint = f"{head}:{plan.strategy}:{sorted(rollback.removals.items())}"
        try:
            answer = request_approval(
                description=plan.to_markdown(),
                fingerprint=fingerprint,
                timeout_seconds=approval_timeout_seconds,
                poll_interval_seconds=approval_poll_seconds,
            )
        except FlowPauseTimeout as exc:
            rollback.approval.timed_out = True
            raise ApprovalTimedOut(approval_timeout_seconds) from exc
        rollback.approval.decision, rollback.approval.approver = answer.decision, answer.approver
        rollback.approval.comment, rollback.approval.via = answer.comment or None, answer.via
        rollback.approval.decided_at = utc_now()
        if answer.decision == "reject":
            rollback.status = "rejected"
            return Cancelled(message=f"Rollback rejected by {answer.approver}: {answer.comment}".rstrip(": "))
        if answer.plan_fingerprint and answer.plan_fingerprint != fingerprint:
            raise StaleApproval(approved=answer.plan_fingerprint, current=fingerprint)

        rollback.status = "running"
        message = f"oms-audit: roll back audit fields (run {run_id})"
        with migration_lease(target, run_id=run_id, owner=rollback.triggered_by or author) as keeper:
            tracker.record()
            if plan.strategy == "reset" and plan.reset_to_commit:
                reset_branch(target, plan.reset_to_commit)
            else:
                for removal in plan.removals:
                    keeper.raise_if_lost()
                    apply_removal(target, removal, author, message)
        validation = validate_against_snapshot(target, plan.snapshot_path)
        rollback.validation = validation
        if not validation.ok:
            raise MigrationValidationFailed([c.name for c in validation.checks if not c.ok])
        monitoring = load_settings(MonitoringSettings)
        archived = archive_dlq_files(Path(dlq_dir) if dlq_dir else monitoring.dlq_dir, f"rollback_{run_id[:8]}")
        rollback.archived_dlq_files = [str(p) for p in archived]
        rollback.status = "succeeded"
        return {"status": rollback.status, "report_path": str(path)}
    except Exception as exc:
        rollback.status = "failed"
        rollback.errors.append(ErrorEntry.from_exception(exc))
        logger.error("Rollback failed: %s", exc)
        raise
    finally:
        rollback.head_commit_after = tracker.head_commit()
        rollback.finished_at = utc_now()
        save_report(rollback, path)
        tracker.record()
        logger.info("Rollback report written to %s", path)
