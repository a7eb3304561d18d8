"""The audit-fields migration: the deployment guide's steps 1-3 as one Prefect flow.

snapshot -> analyze -> plan + report (a dry run ends here) -> approve (pause) -> patch each type -> validate
-> report. Nothing touches the schema before an approver says yes; the plan they approved is the plan that
runs (re-analysed after the pause: any schema change since the snapshot stops the run); one migration per
database at a time (lease). The JSON report is rewritten at every step, so even a crash leaves it current.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import State

from core.errors import MigrationValidationFailed, PlanConflict
from core.migration_commits import patch_message
from core.migration_report import ApprovalSection, MigrationReport, PlanSection
from tasks.artifacts import migration_summary, publish_plan
from tasks.patching import apply_operations
from tasks.run_record import run_books
from tasks.schema_tasks import analyze_target, check_for_drift, plan_migration, snapshot_schema
from tasks.terminus_target import resolve_target
from tasks.validation import validate_target


def _run_name() -> str:
    params = flow_run.parameters
    mode = "dry-run" if params.get("dry_run", True) else "execute"
    # renamed after planning to audit-fields-<database>-<mode>-<plan> (tasks.artifacts.name_run)
    return f"audit-fields-{params.get('database') or params.get('env', 'local')}-{mode}"


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
    with run_books(
        MigrationReport,
        env=env,
        reports_dir=reports_dir,
        triggered_by=triggered_by,
        service_account=service_account,
        mode="dry_run" if dry_run else "execute",
        approval=ApprovalSection(required=not dry_run, timeout_seconds=None if dry_run else approval_timeout_seconds),
    ) as run:
        report = run.report
        target = run.attach(resolve_target(env, database, branch))
        if not dry_run:
            run.hold_lease()  # before anything is timed or asked: a second run is told who holds it
        report.snapshot_path, report.head_commit_before = snapshot_schema(target, str(run.path.parent), run.run_id)
        analysis = analyze_target(target, include or [], exclude or [])
        if analysis.conflicts:
            report.plan = PlanSection.blocked(analysis)
            raise PlanConflict(analysis.conflicts)
        plan, refused = plan_migration(target, analysis)
        report.plan = PlanSection.of(plan)
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
            return run.finish("planned", fingerprint=plan.fingerprint)

        if plan.operations:
            summary = (*migration_summary(plan, env), plan_url)
            if not run.approve(
                plan.to_markdown(), plan.fingerprint, approval_timeout_seconds, approval_poll_seconds, summary
            ):
                return run.rejected()
            run.status("running")
            baseline = check_for_drift(target, plan, report.snapshot_path, include or [], exclude or [])
            apply_operations(target, plan.operations, run, patch_message(run.run_id))
        else:
            report.approval.required = False
            if not run.predecessor_interrupted:
                logger.info("%s", plan.nothing_to_patch)
                return run.finish("succeeded", fingerprint=plan.fingerprint)
            logger.info("Nothing is left to patch; validating what the interrupted run before this one did")
            baseline = analysis
        report.validation = validate_target(target, baseline, report.service_account, run.run_id)
        if not report.validation.ok:
            raise MigrationValidationFailed([c.name for c in report.validation.checks if not c.ok])
        return run.finish("succeeded", fingerprint=plan.fingerprint)
    return run.outcome  # the run was interrupted: it ended Cancelled, the books say how far it got
