"""The audit-fields migration: the deployment guide's steps 1-3 as one Prefect flow.

snapshot -> analyze -> plan + report (a dry run ends here) -> approval pause -> patch each type -> validate
-> report. Nothing touches the schema before an approver says yes, the plan they approved is the plan that
runs (fingerprint re-checked after the pause), and one migration per database runs at a time (lease).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from core.errors import (
    ApprovalTimedOut,
    MigrationValidationFailed,
    PlanConflict,
    StaleApproval,
)
from core.migration_plan import MigrationPlan, build_plan, check_drift
from core.migration_report import (
    ApprovalSection,
    ErrorEntry,
    MigrationReport,
    PlanSection,
    TypeEntry,
    report_path,
    save_report,
    utc_now,
)
from core.schema_analysis import SchemaAnalysis
from core.settings import MigrationSettings, load_settings
from tasks.approval import request_approval
from tasks.artifacts import advance_progress, publish_plan, publish_report, start_progress
from tasks.patching import patch_type
from tasks.run_tracking import RunTracker, migration_lease
from tasks.schema_tasks import analyze_target, plan_migration, snapshot_schema
from tasks.terminus_target import resolve_target
from tasks.validation import validate_target


def plan_section(plan: MigrationPlan) -> PlanSection:
    to_patch = {op.class_name: sorted(op.fields) for op in plan.operations}
    return PlanSection(
        fingerprint=plan.fingerprint,
        estimated_duration_seconds=plan.estimated_duration_seconds,
        estimate_basis=plan.estimate_basis,
        operations=len(plan.operations),
        types=[
            TypeEntry(
                name=t.name,
                action=str(t.action),
                reason=t.reason,
                missing_fields=to_patch.get(t.name, list(t.missing_fields)),
                document_count=t.document_count,
                state="pending" if t.name in to_patch else "not_applicable",
            )
            for t in plan.analysis.types
        ],
    )


def blocked_plan_section(analysis: SchemaAnalysis) -> PlanSection:
    """What the report shows when conflicts block the plan: every type's classification and each conflict."""
    return PlanSection(
        fingerprint="",
        estimated_duration_seconds=0.0,
        estimate_basis="no plan: conflicting audit-field declarations block it",
        types=[
            TypeEntry(name=t.name, action=str(t.action), reason=t.reason, document_count=t.document_count)
            for t in analysis.types
        ],
        conflicts=[c.message for c in analysis.conflicts],
    )


def _run_name() -> str:
    params = flow_run.parameters
    mode = "dry-run" if params.get("dry_run", True) else "execute"
    return f"audit-fields-{params.get('env', 'local')}-{mode}"


@flow(name="audit-fields-migration", flow_run_name=_run_name, log_prints=False)
def audit_fields_migration(
    env: str = "local",
    dry_run: bool = True,
    database: str | None = None,
    branch: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    approval_timeout_seconds: int = 86400,
    approval_poll_seconds: int = 5,
    reports_dir: str | None = None,
    service_account: str | None = None,
    triggered_by: str | None = None,
) -> dict[str, Any] | State[Any]:
    """Add the six audit fields to every document type of an ontology database.

    Args:
        env: Environment name: the TerminusDB connection block of that name, else the environment variables.
        dry_run: Analyse and plan only, writing the JSON report; change nothing.
        database: Database to migrate (default: the environment's TERMINUS_DB_NAME).
        branch: Branch to migrate (default: the environment's TERMINUS_DB_BRANCH).
        include: Only these types (default: every document type).
        exclude: Leave these types alone.
        approval_timeout_seconds: How long the run waits for an approver before failing, changing nothing.
        approval_poll_seconds: How often the paused run checks for an answer.
        reports_dir: Where reports and the schema snapshot go (default: OMS_AUDIT_REPORTS_DIR).
        service_account: Commit author of the schema changes (default: OMS_AUDIT_SERVICE_ACCOUNT).
        triggered_by: Who started the run, for the history (default: the OS user).
    """
    logger = get_run_logger()
    settings = load_settings(MigrationSettings)
    target = resolve_target(env, database, branch)
    author = service_account or settings.service_account
    directory = Path(reports_dir) if reports_dir else settings.reports_dir
    run_id = str(flow_run.id or "local")
    started = utc_now()
    path = report_path(directory, started)
    report = MigrationReport(
        mode="dry_run" if dry_run else "execute",
        status="running",
        env=env,
        database=target.database,
        branch=target.branch,
        run_id=run_id,
        flow_run_id=flow_run.id,
        triggered_by=triggered_by or getpass.getuser(),
        service_account=author,
        started_at=started,
        approval=ApprovalSection(required=not dry_run, timeout_seconds=None if dry_run else approval_timeout_seconds),
    )
    save_report(report, path)
    tracker = RunTracker(target, report, str(path))
    outcome: State[Any] | None = None
    try:
        snapshot_path, head = snapshot_schema(target, str(directory), run_id)
        report.snapshot_path, report.head_commit_before = snapshot_path, head
        analysis = analyze_target(target, include or [], exclude or [])
        if analysis.conflicts:
            report.plan = blocked_plan_section(analysis)
            raise PlanConflict(analysis.conflicts)
        plan, refused = plan_migration(target, analysis)
        report.plan = plan_section(plan)
        publish_plan(plan)
        logger.info("Plan %s: %d types to patch", plan.fingerprint[:12], len(plan.operations))
        if refused is not None:
            if not dry_run:
                raise refused
            report.warnings.append(f"The plan could not be timed and executing it will fail: {refused}")
            logger.warning("%s", report.warnings[-1])
        if dry_run:
            report.status = "planned"
            return {"status": report.status, "report_path": str(path), "fingerprint": plan.fingerprint}
        if not plan.operations:
            report.approval.required = False
            report.status = "succeeded"
            logger.info("Every document type already has the audit fields; nothing to approve or patch")
            return {"status": report.status, "report_path": str(path), "fingerprint": plan.fingerprint}

        with migration_lease(target, run_id=run_id, owner=report.triggered_by or author) as keeper:
            report.status = "awaiting_approval"
            save_report(report, path)
            tracker.record()
            try:
                answer = request_approval(
                    description=plan.to_markdown(),
                    fingerprint=plan.fingerprint,
                    timeout_seconds=approval_timeout_seconds,
                    poll_interval_seconds=approval_poll_seconds,
                )
            except FlowPauseTimeout as exc:
                report.approval.timed_out = True
                raise ApprovalTimedOut(approval_timeout_seconds) from exc
            report.approval.decision = answer.decision
            report.approval.approver = answer.approver
            report.approval.comment = answer.comment or None
            report.approval.via = answer.via
            report.approval.decided_at = utc_now()
            if answer.decision == "reject":
                report.status = "rejected"
                message = f"Rejected by {answer.approver}" + (f": {answer.comment}" if answer.comment else "")
                logger.info("%s; nothing was changed", message)
                outcome = Cancelled(message=message)
                return outcome
            if answer.plan_fingerprint and answer.plan_fingerprint != plan.fingerprint:
                raise StaleApproval(approved=answer.plan_fingerprint, current=plan.fingerprint)

            report.status = "running"
            save_report(report, path)
            current = analyze_target(target, include or [], exclude or [])
            check_drift(plan.fingerprint, build_plan(current, database=target.database, branch=target.branch))

            total = len(plan.operations)
            progress = start_progress(total)
            message = f"oms-audit: add audit fields (run {run_id})"
            states = {entry.name: entry for entry in report.plan.types}
            for done, operation in enumerate(plan.operations, start=1):
                keeper.raise_if_lost()
                states[operation.class_name].state = "applying"
                save_report(report, path)
                tracker.record()
                try:
                    patch_type(target, operation, author, message)
                except Exception:
                    states[operation.class_name].state = "failed"
                    raise
                states[operation.class_name].state = "applied"
                save_report(report, path)
                tracker.record()
                advance_progress(progress, done, total, operation.class_name)

            validation = validate_target(target, analysis, author, run_id)
            report.validation = validation
            if not validation.ok:
                raise MigrationValidationFailed([c.name for c in validation.checks if not c.ok])
            report.status = "succeeded"
            return {"status": report.status, "report_path": str(path), "fingerprint": plan.fingerprint}
    except Exception as exc:
        report.status = "failed"
        report.errors.append(ErrorEntry.from_exception(exc))
        logger.error("Audit-fields migration failed: %s", exc)
        raise
    finally:
        if report.mode == "execute" and report.head_commit_before:
            report.head_commit_after = tracker.head_commit()
        report.finished_at = utc_now()
        save_report(report, path)
        tracker.record()
        publish_report(report, path)
        logger.info("Report written to %s", path)
