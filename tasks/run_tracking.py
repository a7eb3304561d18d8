"""The run's footprint in the metadata database: its ``MigrationRun`` history record and the lease.

The report is the run's single source of truth in memory; the history record is written from it whole, so
the two never disagree. A history write that fails after patching began is logged, not fatal: the schema
change must not be abandoned half-way because bookkeeping hiccuped (the JSON report still has everything).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.client.orchestration import get_client

from core.errors import OmsAuditError, RollbackRefused, SchemaDrift, StaleApproval
from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.migration_commits import commits_of_run
from core.migration_lease import Lease, LeaseKeeper
from core.migration_report import MigrationReport, RollbackReport, RunReport
from core.run_history import MigrationRunRecord, RunMode, RunStatus, record_run
from core.terminus import TerminusGateway

from .terminus_target import Target, open_gateway, target_settings

LEASE_TTL_SECONDS = 300.0
RECENT_COMMITS = 1000  # how far back the log is read for this run's commits
STOPPED_ERRORS = {cls.__name__ for cls in (SchemaDrift, StaleApproval, RollbackRefused)}


def run_status(report: RunReport) -> RunStatus:
    if report.approval.timed_out:
        return "timed_out"
    if report.status == "failed" and report.errors and report.errors[-1].type in STOPPED_ERRORS:
        return "stopped"
    return report.status


def history_record(report: RunReport, report_path: str | None) -> MigrationRunRecord:
    if isinstance(report, MigrationReport):
        fingerprint = report.plan.fingerprint if report.plan else ""
        states = {t.name: t.state for t in report.plan.types if t.state != "not_applicable"} if report.plan else {}
        mode: RunMode = report.mode
    elif isinstance(report, RollbackReport):
        fingerprint, mode = "", "rollback"
        states = {name: ("applied" if report.status == "succeeded" else "pending") for name in report.removals}
    else:
        raise TypeError(f"not a run report: {type(report).__name__}")
    return MigrationRunRecord(
        run_id=report.run_id,
        database=report.database,
        branch=report.branch,
        mode=mode,
        status=run_status(report),
        triggered_by=report.triggered_by or "unknown",
        approved_by=report.approval.recorded_approver if report.approval.decision == "approve" else None,
        approval_comment=report.approval.comment,
        fingerprint=fingerprint,
        head_commit_before=report.head_commit_before,
        head_commit_after=report.head_commit_after,
        type_states=states,
        report_path=report_path,
        started_at=report.started_at,
        finished_at=report.finished_at,
        error=f"{report.errors[-1].type}: {report.errors[-1].message}" if report.errors else None,
    )


class RunTracker:
    """Writes the history record of one run; created once per flow run, closed when the run ends.

    It keeps one metadata gateway for the run: the flow records once per patched type, and opening a
    gateway costs more than the write itself (a new HTTP client and connection each time).
    """

    def __init__(self, target: Target, report: RunReport, report_path: str) -> None:
        self.target = target
        self.report = report
        self.report_path = report_path
        self._ready = False
        self._gateway: TerminusGateway | None = None
        self._recorded_at = 0.0

    def record(self, *, at_most_every: float = 0.0) -> None:
        """Write the record now, or (with ``at_most_every``) only if the last write is that many seconds old.

        The patch loop throttles its per-type writes like the progress artifact: the JSON report carries
        every type's state at every step, and the final write brings the history up to date.
        """
        if at_most_every and time.monotonic() - self._recorded_at < at_most_every:
            return
        self._recorded_at = time.monotonic()
        settings = target_settings(self.target)
        try:
            if self._gateway is None:
                self._gateway = metadata_gateway(settings)
            if not self._ready:
                ensure_metadata_db(self._gateway, settings)
                self._ready = True
            record_run(self._gateway, history_record(self.report, self.report_path))
        except OmsAuditError as exc:
            self.close()  # the next record starts on a fresh connection
            get_run_logger().warning("Could not update the run history (%s); the JSON report has everything", exc)

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None

    def last_commit(self) -> str | None:
        """The head the run left: a migration's own newest patch commit (a later foreign commit is not ours);
        for a rollback, the head it reset to or committed last."""
        try:
            with open_gateway(self.target) as gateway:
                if isinstance(self.report, RollbackReport):
                    return gateway.head_commit()
                ours = commits_of_run(gateway.log(count=RECENT_COMMITS), self.report.run_id)
        except OmsAuditError as exc:
            get_run_logger().warning("Could not read the commits of this run: %s", exc)
            return None
        return ours[0].id if ours else self.report.head_commit_before


def holder_run_ended(lease: Lease) -> bool:
    """Whether the lease's run is a flow run this Prefect API knows to have ended (crashed, cancelled, …).

    A run killed with its process cannot release its lease; without this, a re-run would wait for the
    lease to expire. Unknown runs (another Prefect server, or no flow run) count as alive.
    """
    try:
        flow_run_id = uuid.UUID(lease.run_id)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception:  # not a flow run id, not this server's run, API trouble: assume it is alive
        return False
    return state is not None and state.is_final()


@contextmanager
def migration_lease(target: Target, *, run_id: str, owner: str) -> Iterator[LeaseKeeper]:
    """Hold the database's migration lease for the block; raises LeaseHeld naming the current holder."""
    settings = target_settings(target)
    with metadata_gateway(settings) as gateway:
        ensure_metadata_db(gateway, settings)
    keeper = LeaseKeeper.acquire(
        lambda: metadata_gateway(settings),
        database=target.database,
        owner=owner,
        run_id=run_id,
        ttl_seconds=LEASE_TTL_SECONDS,
        abandoned=holder_run_ended,
    )
    with keeper:
        get_run_logger().info("Holding the migration lease on %s", target.database)
        yield keeper
