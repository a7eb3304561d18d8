"""Roll back audit fields: the guide's rollback plan, approved like the migration itself.

From a migration report (or a schema snapshot): plan the reverse under the database's lease (remove exactly
the fields that run's commits added, or reset to the snapshot's commit when only audit-field commits
followed it), pause for approval, re-check that nothing moved while waiting, apply it one commit per type,
check the resulting schema, archive (never delete) the DLQ, and write a rollback report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State

from core.dlq import archive_dlq_files
from core.errors import MigrationValidationFailed, RollbackRefused
from core.migration_commits import rollback_message
from core.migration_report import ROLLBACK_REPORT_PREFIX, ApprovalSection, RollbackReport
from core.rollback_plan import RollbackPlan, RollbackSource, load_rollback_source, plan_rollback
from core.schema_documents import schema_differences
from core.settings import MonitoringSettings, load_settings
from tasks.artifacts import publish_rollback_plan, rollback_summary
from tasks.patching import apply_operations
from tasks.run_record import RECENT_COMMITS, run_books
from tasks.schema_tasks import read_consistent_schema
from tasks.terminus_target import Target, open_gateway, resolve_target
from tasks.validation import validate_schema
from tasks.write_freeze import writes_frozen


def _plan_now(target: Target, source: RollbackSource, reset: bool) -> tuple[str, list[dict[str, Any]], RollbackPlan]:
    with open_gateway(target) as gateway:
        head, schema = read_consistent_schema(gateway)
        log = gateway.log(count=RECENT_COMMITS)
    return head, schema, plan_rollback(source, current_schema=schema, log=log, reset=reset)


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
    """Undo an audit-fields migration described by its JSON report (or its schema snapshot).

    Args:
        report: The migration's JSON report (migration_report_audit_fields_<timestamp>.json) or schema snapshot.
        env: Environment the migration ran in (TerminusDB connection block of that name, else env variables).
        reset: Reset the branch to the snapshot's commit instead of removing fields (refused if others committed).
        approval_timeout_seconds: How long to wait for an approver before failing, changing nothing.
        approval_poll_seconds: How often the paused run checks for an answer.
        reports_dir: Where the rollback report goes (default: OMS_AUDIT_REPORTS_DIR).
        dlq_dir: DLQ folder whose files are archived (default: OMS_AUDIT_DLQ_DIR).
        service_account: Commit author of the schema changes (default: OMS_AUDIT_SERVICE_ACCOUNT).
        triggered_by: Who started the rollback, for the report (default: the OS user).
    """
    logger = get_run_logger()
    with run_books(
        RollbackReport,
        env=env,
        reports_dir=reports_dir,
        triggered_by=triggered_by,
        service_account=service_account,
        prefix=ROLLBACK_REPORT_PREFIX,
        strategy="reset" if reset else "remove_fields",
        source_report=str(report),
        approval=ApprovalSection(required=True, timeout_seconds=approval_timeout_seconds),
    ) as run:
        rollback = run.report
        source = load_rollback_source(Path(report))
        if source.env is not None and source.env != env:
            raise RollbackRefused(
                f"{source.path} records a migration in env {source.env!r}, not {env!r}; pass --env {source.env}."
            )
        target = run.attach(resolve_target(env, source.database, source.branch))
        rollback.snapshot_path = str(report) if source.run_id is None else None
        run.hold_lease()
        # Every precondition is checked here, before anything changes: plan_rollback refuses what is unsafe.
        head, schema, plan = _plan_now(target, source, reset)
        rollback.head_commit_before, rollback.removals = head, plan.removed
        plan_url = publish_rollback_plan(plan.to_markdown(), target.database)
        fingerprint = plan.fingerprint(head)
        summary = (*rollback_summary(plan), plan_url)
        if not run.approve(plan.to_markdown(), fingerprint, approval_timeout_seconds, approval_poll_seconds, summary):
            return run.rejected()

        run.status("running")
        # The guide's rollback step 1: stop new writes while the schema changes (lifted also on failure).
        with writes_frozen(
            target,
            reason=f"audit-fields rollback {run.run_id} is changing the schema",
            set_by=rollback.triggered_by or "rollback",
        ):
            # The wait may have been long: plan again, and go ahead only if the same change is still right.
            head_now, schema_now, plan_now = _plan_now(target, source, reset)
            moved = schema_differences(schema, schema_now)
            if moved or plan_now.change() != plan.change():
                raise RollbackRefused(
                    "The schema changed while the rollback waited for approval"
                    + (f" ({'; '.join(moved[:5])})" if moved else "")
                    + "; nothing was changed. Run the rollback again to plan it afresh."
                )
            expected, meaning = plan_now.expected_schema(source, schema_now)
            apply_operations(target, plan_now.operations(head_now), run, rollback_message(run.run_id))
            rollback.validation = validate_schema(target, expected, meaning)
            if not rollback.validation.ok:
                raise MigrationValidationFailed([c.name for c in rollback.validation.checks if not c.ok])
        monitoring = load_settings(MonitoringSettings)
        archived = archive_dlq_files(Path(dlq_dir) if dlq_dir else monitoring.dlq_dir, f"rollback_{run.run_id[:8]}")
        rollback.archived_dlq_files = [str(p) for p in archived]
        logger.info(
            "Rolled back %s; archived %d DLQ files", plan_now.removed or plan_now.reset_to_commit, len(archived)
        )
        return run.finish("succeeded")
    return run.outcome  # interrupted: ended Cancelled
