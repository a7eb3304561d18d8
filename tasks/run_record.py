"""The books of one run — its JSON report, its ``MigrationRun`` record, its lease, its outcome — in one place.

Both flows (and the DLQ sweep to come) open a run with :func:`run_books` and then only say what happens
(``run.status("running")``, ``run.type_state(name, "applied")``, ``return run.finish()``); the books save
the report (a cheap local file) at every transition, write the history record from it whole (so the two
never disagree), hold the lease, and close everything whatever happens. A bookkeeping failure after the
lease is held is logged, never fatal: the schema change must not be abandoned half-way because the
metadata database hiccuped (the JSON report still has everything).

The order keeps the books true through a crash (SIGKILL at any point):

1. the report file exists before anything else;
2. an execution's ``MigrationRun`` record exists before its lease is taken;
3. holding the lease, the unfinished records of dead runs of the same database are reconciled: ``crashed``,
   per-type states read from the branch log (the authority), or the dead run's own final report if it
   closed its report but not its record; and a run after an interrupted one always validates;
4. at the end, the per-type states and the head after are read back from the branch log.
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from core.errors import ApprovalTimedOut, OmsAuditError, RunInterrupted, TerminusTimeout
from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.migration_commits import classes_changed_by_run
from core.migration_lease import Lease, LeaseKeeper
from core.migration_report import (
    FINAL_STATUSES,
    REPORT_PREFIX,
    ErrorEntry,
    MigrationReport,
    ReportStatus,
    RollbackReport,
    RunReport,
    TypeState,
    report_path,
    save_report,
)
from core.retrying import retry_transient
from core.run_history import MigrationRunRecord, list_runs, reconcile_dead_runs, record_of, record_run
from core.settings import MigrationSettings, TerminusSettings, load_settings
from core.terminus import TerminusGateway
from core.timestamps import utc_now

from .approval import approved, refused_answers, rejection_message, request_approval
from .artifacts import publish_report
from .stop_request import stop_requested
from .terminus_target import Target, target_settings

ReportT = TypeVar("ReportT", bound=RunReport)

#: least time between two history writes while patching (the final write brings the record up to date)
HISTORY_INTERVAL_SECONDS = 1.0
#: how far back the log is read for a run's commits
RECENT_COMMITS = 1000
#: the timeout of the closing bookkeeping calls once the server has been found not to answer
CLOSING_TIMEOUT_SECONDS = 5.0
#: statuses of a predecessor that changed nothing, or finished: no reason to validate again
CLEAN_ENDINGS = ("succeeded", "rejected", "stopped", "timed_out", "planned")


class RunBooks(Generic[ReportT]):
    """The record-keeping of one flow run (made by :func:`run_books`)."""

    def __init__(self, report: ReportT, path: Path, settings: MigrationSettings) -> None:
        self.report = report
        self.path = path
        self.settings = settings
        self.target: Target | None = None
        self.keeper: LeaseKeeper | None = None
        #: the previous run of this database did not finish cleanly: validate even with nothing to patch
        self.predecessor_interrupted = False
        self._outcome: dict[str, Any] | State[Any] | None = None
        self._meta: TerminusGateway | None = None
        self._meta_ready = False
        self._recorded_at = 0.0
        self._closing_fast = False

    # ------------------------------------------------------------------------------------------------
    # what the flow says

    @property
    def run_id(self) -> str:
        return self.report.run_id

    def attach(self, target: Target) -> Target:
        """The run works on ``target`` from now on."""
        self.target = target
        self.report.database, self.report.branch = target.database, target.branch
        self.report.terminus_url, self.report.config_source = target.url, target.config_source
        return target

    def status(self, status: ReportStatus) -> None:
        self.report.status = status
        self.save()
        self.record()

    def type_state(self, name: str, state: TypeState) -> None:
        """One type's progress: the report at once, the history at most every second."""
        if isinstance(self.report, MigrationReport) and self.report.plan is not None:
            self.report.plan.entry(name).state = state
        elif isinstance(self.report, RollbackReport):
            self.report.type_states[name] = state
        self.save()
        self.record(at_most_every=HISTORY_INTERVAL_SECONDS)

    def check_in(self) -> None:
        """Between two steps: stop here if the lease was lost or a stop was asked for (nothing half-done)."""
        if self.keeper is not None:
            self.keeper.raise_if_lost()
        how = stop_requested()
        if how is not None:
            states = self._type_states()
            applied = sum(state == "applied" for state in states.values())
            raise RunInterrupted(how, applied=applied, total=len(states))

    def hold_lease(self) -> LeaseKeeper:
        """Take the database's lease (``LeaseHeld`` names the holder), after recording the run; then
        reconcile the records of dead runs of the database, and say so."""
        target = self._target()
        self.record(required=True)
        where = self._meta_where()
        keeper = LeaseKeeper.acquire(
            lambda: metadata_gateway(self._meta_settings()),
            database=target.database,
            owner=self.report.triggered_by or "unknown",
            run_id=self.run_id,
            ttl_seconds=self.settings.lease_ttl_seconds,
            interval_seconds=self.settings.lease_renew_seconds,
            abandoned=holder_run_ended,
            attempt=lambda take: retry_transient(take, step="Taking the migration lease", where=where),
        )
        self.keeper = keeper.__enter__()  # renewing from now on; released by close()
        logger = get_run_logger()
        logger.info("Holding the migration lease on %s", target.database)
        if keeper.lease.took_over_from:
            self._warn(f"Took over the migration lease from {keeper.lease.took_over_from}: that run is dead.")
        self._reconcile(keeper.lease)
        return keeper

    def approve(
        self,
        description: str,
        fingerprint: str,
        timeout_seconds: int,
        poll_seconds: int,
        summary: tuple[str, list[str], str | None] | None = None,
    ) -> bool:
        """Pause for the approver; True when approved (False: rejected, see :meth:`rejected`).

        ``summary`` = (question, facts, plan artifact URL): the short description the dialog shows."""
        self.check_in()
        self.status("awaiting_approval")
        try:
            answer = request_approval(
                description,
                fingerprint,
                timeout_seconds,
                poll_seconds,
                env=self.report.env,
                triggered_by=self.report.triggered_by,
                summary=summary,
            )
        except ApprovalTimedOut as exc:
            self.report.approval.timed_out = True
            self.report.approval.refused = refused_answers(exc)
            raise
        if approved(answer, fingerprint, self.report.approval):
            return True
        self.report.status = "rejected"
        get_run_logger().info("%s; nothing was changed", rejection_message(self.report.approval))
        return False

    def rejected(self) -> State[Any]:
        self.report.status = "rejected"
        self._outcome = Cancelled(message=rejection_message(self.report.approval))
        return self._outcome

    def finish(self, status: ReportStatus = "succeeded", **details: Any) -> dict[str, Any]:
        """The run's final status and its return value (status, report path, ``details``)."""
        self.report.status = status
        self._outcome = {"status": status, "report_path": str(self.path), **details}
        return self._outcome

    @property
    def outcome(self) -> dict[str, Any] | State[Any]:
        """What the flow returns when the books ended the run (an interruption ends it Cancelled)."""
        if self._outcome is None:
            raise RuntimeError("the run has no outcome yet")
        return self._outcome

    # ------------------------------------------------------------------------------------------------
    # the report and the history record

    def save(self) -> None:
        save_report(self.report, self.path)

    def record(self, *, at_most_every: float = 0.0, required: bool = False) -> None:
        """Write the history record now (or, with ``at_most_every``, only if the last write is that old).

        ``required``: retried like every TerminusDB call, and a failure raises (the record must exist
        before the lease is taken); otherwise a failure is logged and the next write catches up.
        """
        if self.target is None:
            return
        if at_most_every and time.monotonic() - self._recorded_at < at_most_every:
            return
        self._recorded_at = time.monotonic()
        try:
            if required:
                retry_transient(self._write_record, step="Recording the run", where=self._meta_where())
            else:
                self._write_record()
        except OmsAuditError as exc:
            self._drop_meta()  # the next write starts on a fresh connection
            if required:
                raise
            get_run_logger().warning("Could not update the run history (%s); the JSON report has everything", exc)

    def _write_record(self) -> None:
        meta = self._meta_gateway()
        if not self._meta_ready:
            ensure_metadata_db(meta, self._meta_settings())
            self._meta_ready = True
        record_run(meta, record_of(self.report, str(self.path)))

    # ------------------------------------------------------------------------------------------------
    # endings

    def failed(self, exc: BaseException) -> None:
        self.report.status = "failed"
        message = str(exc) if isinstance(exc, Exception) else "the run was interrupted before it finished"
        self.report.errors.append(ErrorEntry.from_exception(exc).model_copy(update={"message": message}))
        self._closing_fast = isinstance(exc, TerminusTimeout)

    def interrupted(self, exc: RunInterrupted) -> None:
        self.report.status = "cancelled"
        self.report.errors.append(ErrorEntry.from_exception(exc))
        self._outcome = Cancelled(message=str(exc))
        get_run_logger().warning("%s", exc)

    def close(self) -> None:
        """Read back what the run did, then save the report, write the record, release the lease, publish.

        Never raises: each step's failure is logged and the others still happen."""
        if self.report.status not in FINAL_STATUSES:
            self.failed(KeyboardInterrupt())
        self._quietly("read the run's commits from the branch log", self._read_back_from_log)
        self.report.finished_at = utc_now()
        self._quietly("write the report", self.save)
        self._quietly("record the run history", lambda: self.record(required=True))
        if self.keeper is not None:
            self.keeper.close()
        self._drop_meta()
        self._quietly("publish the report artifacts", lambda: publish_report_artifacts(self.report, self.path))
        get_run_logger().info("Report written to %s", self.path)

    def _read_back_from_log(self) -> None:
        """The head the run left and, for a run that did not succeed, which types it really applied."""
        if self.target is None or not self.report.head_commit_before:
            return
        with self._target_gateway() as gateway:
            log = gateway.log(count=RECENT_COMMITS)
        if isinstance(self.report, RollbackReport):
            self.report.head_commit_after = log[0].id if log else None
            if self.report.status == "succeeded":
                self.report.type_states = dict.fromkeys(self.report.removals, "applied")
            return
        changed = classes_changed_by_run(log, self.run_id)
        self.report.head_commit_after = changed.last_commit or self.report.head_commit_before
        if self.report.status != "succeeded" and isinstance(self.report, MigrationReport) and self.report.plan:
            for entry in self.report.plan.types:
                if entry.name in changed.classes:
                    entry.state = "applied"
                elif entry.state in ("applying", "applied"):
                    entry.state = "pending"  # the log has no commit of it: it was not applied

    # ------------------------------------------------------------------------------------------------
    # reconciling dead predecessors

    def _reconcile(self, lease: Lease) -> None:
        target = self._target()
        where = self._meta_where()
        with self._target_gateway() as gateway:
            log = retry_transient(
                lambda: gateway.log(count=RECENT_COMMITS), step="Reading the branch log", where=self._target_where()
            )
        meta = self._meta_gateway()
        reconciled = retry_transient(
            lambda: reconcile_dead_runs(meta, target.database, alive_run_id=self.run_id, log=log, closed=closed_record),
            step="Reconciling the history of dead runs",
            where=where,
        )
        for run in reconciled:
            applied = sum(state == "applied" for state in run.type_states.values())
            self._warn(
                f"Run {run.run_id} of {target.database} ended without closing its books; its record now says "
                f"{run.status} ({applied} of {len(run.type_states)} types applied, read from the branch log)."
            )
        previous = [
            run
            for run in retry_transient(
                lambda: list_runs(meta, database=target.database, limit=50), step="Reading the run history", where=where
            )
            if run.run_id != self.run_id and run.mode != "dry_run"
        ]
        self.predecessor_interrupted = bool(reconciled or lease.took_over_from) or bool(
            previous and previous[0].status not in CLEAN_ENDINGS
        )
        if self.predecessor_interrupted:
            get_run_logger().info("The previous run of %s did not finish cleanly: this run validates", target.database)

    def _warn(self, message: str) -> None:
        self.report.warnings.append(message)
        get_run_logger().warning("%s", message)
        self.save()

    # ------------------------------------------------------------------------------------------------
    # plumbing

    def _type_states(self) -> dict[str, TypeState]:
        if isinstance(self.report, MigrationReport) and self.report.plan is not None:
            return {t.name: t.state for t in self.report.plan.types if t.state != "not_applicable"}
        if isinstance(self.report, RollbackReport):
            return dict(self.report.type_states)
        return {}

    def _target(self) -> Target:
        if self.target is None:
            raise RuntimeError("attach a target first")
        return self.target

    def _terminus_settings(self) -> TerminusSettings:
        settings = target_settings(self._target())
        if self._closing_fast:  # the server did not answer: do not wait a whole timeout again per call
            return settings.model_copy(
                update={"timeout_seconds": min(settings.timeout_seconds, CLOSING_TIMEOUT_SECONDS)}
            )
        return settings

    def _meta_settings(self) -> TerminusSettings:
        return self._terminus_settings()

    def _meta_where(self) -> str:
        return f"the metadata database '{self._meta_settings().meta_database}'"

    def _target_where(self) -> str:
        return f"the target database '{self._target().database}'"

    def _meta_gateway(self) -> TerminusGateway:
        if self._meta is None:
            self._meta = metadata_gateway(self._meta_settings())
        return self._meta

    @contextmanager
    def _target_gateway(self) -> Iterator[TerminusGateway]:
        target = self._target()
        with TerminusGateway(self._terminus_settings(), database=target.database, branch=target.branch) as gateway:
            yield gateway

    def _drop_meta(self) -> None:
        if self._meta is not None:
            self._meta.close()
            self._meta = None
            self._meta_ready = False

    def _quietly(self, what: str, action: Any) -> None:
        try:
            action()
        except Exception as exc:
            get_run_logger().warning("Could not %s: %s", what, exc)


@contextmanager
def run_books(
    report_type: type[ReportT],
    *,
    env: str,
    reports_dir: str | None,
    triggered_by: str | None,
    service_account: str | None,
    prefix: str = REPORT_PREFIX,
    **fields: Any,
) -> Iterator[RunBooks[ReportT]]:
    """Open the books of this flow run: a new report file, then the block; closed whatever happens.

    An error is recorded and re-raised; an interruption (:class:`RunInterrupted`) ends the run Cancelled
    (``run.outcome``), with the report and record saying which types were applied.
    """
    settings = load_settings(MigrationSettings)
    started = utc_now()
    path = report_path(Path(reports_dir) if reports_dir else settings.reports_dir, started, prefix=prefix)
    report = report_type(
        status="running",
        env=env,
        run_id=str(flow_run.id or uuid.uuid4()),
        flow_run_id=flow_run.id,
        triggered_by=triggered_by or getpass.getuser(),
        service_account=service_account or settings.service_account,
        started_at=started,
        **fields,
    )
    books = RunBooks(report, path, settings)
    books.save()
    try:
        yield books
    except RunInterrupted as exc:
        books.interrupted(exc)
    except BaseException as exc:
        books.failed(exc)
        get_run_logger().error("%s failed: %s", _what(report), exc)
        raise
    finally:
        books.close()


def _what(report: RunReport) -> str:
    return "Rollback" if isinstance(report, RollbackReport) else "Audit-fields migration"


@task(name="report", cache_policy=NO_CACHE)
def publish_report_artifacts(report: RunReport, path: Path) -> None:
    publish_report(report, path)


def closed_record(run: MigrationRunRecord) -> MigrationRunRecord | None:
    """The record a dead run's own final report gives, when it closed its report but not its record."""
    if not run.report_path:
        return None
    report_type: type[RunReport] = RollbackReport if run.mode == "rollback" else MigrationReport
    try:
        report = report_type.model_validate_json(Path(run.report_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if report.run_id != run.run_id or report.status not in FINAL_STATUSES:
        return None
    return record_of(report, run.report_path)


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
