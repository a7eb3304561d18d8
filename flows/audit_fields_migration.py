"""The audit-fields migration: the deployment guide's steps 1-3 as one Prefect flow.

snapshot -> analyze -> plan + report (a dry run ends here) -> approve (pause) -> patch each type -> validate
-> report. Nothing touches the schema before an approver says yes; the plan they approved is the plan that
runs (re-analysed after the pause: any schema change since the snapshot stops the run); one migration per
database at a time (lease). The JSON report is rewritten at every step, so even a crash leaves it current.
"""

from __future__ import annotations

import getpass
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from core.errors import ApprovalTimedOut, MigrationValidationFailed, PlanConflict
from core.migration_commits import patch_message
from core.migration_plan import MigrationPlan
from core.migration_report import (
    ApprovalSection,
    MigrationReport,
    PlanSection,
    TypeEntry,
    report_path,
    save_report,
    utc_now,
)
from core.schema_analysis import SchemaAnalysis
from core.settings import MigrationSettings, load_settings
from tasks.approval import approved, refused_answers, rejection_message, request_approval
from tasks.artifacts import migration_summary, publish_plan, start_progress
from tasks.patching import patch_type
from tasks.reporting import close_report, record_failure
from tasks.run_tracking import RunTracker, migration_lease
from tasks.schema_tasks import analyze_target, check_for_drift, plan_migration, snapshot_schema
from tasks.terminus_target import Target, resolve_target
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


HISTORY_INTERVAL_SECONDS = 1.0


def _run_name() -> str:
    params = flow_run.parameters
    mode = "dry-run" if params.get("dry_run", True) else "execute"
    # renamed after planning to audit-fields-<database>-<mode>-<plan> (tasks.artifacts.name_run)
    return f"audit-fields-{params.get('database') or params.get('env', 'local')}-{mode}"


def _patch_all(
    target: Target, plan: MigrationPlan, report: MigrationReport, path: Path, tracker: RunTracker, keeper: Any
) -> None:
    """One patch task (one commit) per type, in plan order; the report and history follow every step."""
    assert report.plan is not None
    states = {entry.name: entry for entry in report.plan.types}
    progress = start_progress(len(plan.operations), target.database)
    message = patch_message(report.run_id)
    for done, operation in enumerate(plan.operations, start=1):
        keeper.raise_if_lost()
        states[operation.class_name].state = "applying"
        # The report (a cheap local file) is saved on both sides of every patch; the history record, a
        # database write, at most every second (the run's final record brings it up to date).
        save_report(report, path)
        tracker.record(at_most_every=HISTORY_INTERVAL_SECONDS)
        try:
            patch_type(target, operation, report.service_account, message)
        except BaseException:
            states[operation.class_name].state = "failed"
            raise
        states[operation.class_name].state = "applied"
        save_report(report, path)
        progress.advance(done, operation.class_name)


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
    directory = Path(reports_dir) if reports_dir else settings.reports_dir
    started = utc_now()
    path = report_path(directory, started)
    report = MigrationReport(
        mode="dry_run" if dry_run else "execute",
        status="running",
        env=env,
        database=database or "",
        branch=branch or "",
        run_id=str(flow_run.id or uuid.uuid4()),
        flow_run_id=flow_run.id,
        triggered_by=triggered_by or getpass.getuser(),
        service_account=service_account or settings.service_account,
        started_at=started,
        approval=ApprovalSection(required=not dry_run, timeout_seconds=None if dry_run else approval_timeout_seconds),
    )
    save_report(report, path)
    tracker: RunTracker | None = None
    try:
        target = resolve_target(env, database, branch)
        report.terminus_url, report.config_source = target.url, target.config_source
        report.database, report.branch = target.database, target.branch
        tracker = RunTracker(target, report, str(path))
        report.snapshot_path, report.head_commit_before = snapshot_schema(target, str(directory), report.run_id)
        analysis = analyze_target(target, include or [], exclude or [])
        if analysis.conflicts:
            report.plan = blocked_plan_section(analysis)
            raise PlanConflict(analysis.conflicts)
        plan, refused = plan_migration(target, analysis)
        report.plan = plan_section(plan)
        plan_url = publish_plan(plan)
        logger.info("Plan %s: %d types to patch", plan.fingerprint[:12], len(plan.operations))
        if plan.estimate_unknown:
            report.warnings.append(f"The duration estimate is unknown: {plan.estimate_unknown}")
            logger.warning("%s", report.warnings[-1])
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
            logger.info("%s", plan.nothing_to_patch)
            return {"status": report.status, "report_path": str(path), "fingerprint": plan.fingerprint}

        with migration_lease(target, run_id=report.run_id, owner=report.triggered_by or "unknown") as keeper:
            report.status = "awaiting_approval"
            save_report(report, path)
            tracker.record()
            try:
                answer = request_approval(
                    plan.to_markdown(),
                    plan.fingerprint,
                    approval_timeout_seconds,
                    approval_poll_seconds,
                    env=env,
                    triggered_by=report.triggered_by,
                    summary=(*migration_summary(plan, env), plan_url),
                )
            except ApprovalTimedOut as exc:
                report.approval.timed_out = True
                report.approval.refused = refused_answers(exc)
                raise
            if not approved(answer, plan.fingerprint, report.approval):
                report.status = "rejected"
                logger.info("%s; nothing was changed", rejection_message(report.approval))
                return Cancelled(message=rejection_message(report.approval))

            report.status = "running"
            save_report(report, path)
            baseline = check_for_drift(target, plan, report.snapshot_path, include or [], exclude or [])
            _patch_all(target, plan, report, path, tracker, keeper)
            report.validation = validate_target(target, baseline, report.service_account, report.run_id)
            if not report.validation.ok:
                raise MigrationValidationFailed([c.name for c in report.validation.checks if not c.ok])
            report.status = "succeeded"
            return {"status": report.status, "report_path": str(path), "fingerprint": plan.fingerprint}
    except BaseException as exc:
        record_failure(report, exc)
        logger.error("Audit-fields migration failed: %s", exc)
        raise
    finally:
        close_report(report, path, tracker)
