"""The history of migration runs, one ``MigrationRun`` document per run (as Flyway keeps its history table).

A run is written when it starts and updated as it goes: per-type progress (``type_states``), status, the
head commit after, the report path. Updates of a stored run are read-modify-write with TerminusDB's
optimistic concurrency, so two tasks of one run updating different types never lose each other's change.

Runs live on the metadata database's ``migrations`` branch (see :mod:`core.metadata_db` for why).
Every function takes a gateway opened on the metadata database (:func:`core.metadata_db.metadata_gateway`).
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, field_validator

from core.errors import DocumentNotFound
from core.metadata_db import METADATA_AUTHOR, MIGRATION_RUN, MIGRATIONS_BRANCH, lexical_id
from core.migration_commits import classes_changed_by_run
from core.migration_report import MigrationReport, RollbackReport, RunReport, TypeState
from core.optimistic import retry_on_conflict
from core.terminus import Commit, TerminusGateway
from core.timestamps import format_utc, parse_utc, utc_now

logger = logging.getLogger(__name__)

RunMode = Literal["dry_run", "execute", "rollback"]
RunStatus = Literal[
    "planned",
    "awaiting_approval",
    "running",
    "succeeded",
    "failed",
    "rejected",
    "timed_out",
    "stopped",
    "cancelled",
    "crashed",
]
#: statuses of a run that has not finished; such a record whose run is dead is reconciled as ``crashed``
UNFINISHED: tuple[RunStatus, ...] = ("awaiting_approval", "running")

_DATETIME_FIELDS = ("started_at", "finished_at")


class MigrationRunRecord(BaseModel):
    """One migration run as stored in the metadata database."""

    run_id: str
    database: str
    branch: str
    mode: RunMode
    status: RunStatus
    triggered_by: str
    approved_by: str | None = None
    approval_comment: str | None = None
    fingerprint: str
    head_commit_before: str | None = None
    head_commit_after: str | None = None
    type_states: dict[str, TypeState] = {}
    report_path: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None

    @field_validator("run_id", "database", "branch")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    @field_validator("started_at", "finished_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return parse_utc(format_utc(value)) if value is not None else None

    @property
    def document_id(self) -> str:
        return run_document_id(self.run_id)

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"@id": self.document_id, "@type": MIGRATION_RUN}
        for name, value in self.model_dump(exclude={"type_states"}).items():
            if value is None:
                continue  # TerminusDB omits a missing Optional
            doc[name] = format_utc(value) if name in _DATETIME_FIELDS else value
        doc["type_states"] = json.dumps(self.type_states, sort_keys=True)
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> MigrationRunRecord:
        fields = {k: v for k, v in doc.items() if not k.startswith("@")}
        fields["type_states"] = json.loads(fields.get("type_states") or "{}")
        return cls.model_validate(fields)


def run_document_id(run_id: str) -> str:
    return lexical_id(MIGRATION_RUN, run_id)


def record_run(gateway: TerminusGateway, run: MigrationRunRecord) -> None:
    """Store the run as given, creating or replacing its document."""
    gateway.replace_documents(
        [run.to_document()],
        author=METADATA_AUTHOR,
        message=f"Record migration run {run.run_id} ({run.mode}, {run.status})",
        create=True,
        branch=MIGRATIONS_BRANCH,
    )


def get_run(gateway: TerminusGateway, run_id: str) -> MigrationRunRecord | None:
    """The stored run, or None if there is no run with that id."""
    try:
        doc, _ = gateway.get_document(run_document_id(run_id), branch=MIGRATIONS_BRANCH)
    except DocumentNotFound:
        return None
    return MigrationRunRecord.from_document(doc)


def list_runs(gateway: TerminusGateway, database: str | None = None, limit: int = 20) -> list[MigrationRunRecord]:
    """The latest ``limit`` runs, newest first (by start time), optionally only those on ``database``."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    runs = (_parse_or_skip(doc) for doc in gateway.iter_documents(doc_type=MIGRATION_RUN, branch=MIGRATIONS_BRANCH))
    wanted = (run for run in runs if run is not None and (database is None or run.database == database))
    return heapq.nlargest(limit, wanted, key=lambda run: (run.started_at, run.run_id))


def update_type_state(gateway: TerminusGateway, run_id: str, type_name: str, state: TypeState) -> MigrationRunRecord:
    """Set one type's progress in a stored run; returns the run as now stored."""
    return _modify_run(
        gateway,
        run_id,
        lambda run: {"type_states": {**run.type_states, type_name: state}},
        f"Run {run_id}: {type_name} {state}",
    )


def update_run(gateway: TerminusGateway, run_id: str, /, **changes: Any) -> MigrationRunRecord:
    """Change fields of a stored run (e.g. ``status="succeeded", finished_at=...``); returns it as stored."""
    unknown = set(changes) - (set(MigrationRunRecord.model_fields) - {"run_id"})
    if unknown:
        raise ValueError(f"Cannot update {', '.join(sorted(unknown))} of a migration run")
    summary = ", ".join(f"{k}={v}" for k, v in changes.items() if k in ("status", "mode"))
    return _modify_run(gateway, run_id, lambda run: changes, f"Run {run_id} updated {summary}".rstrip())


def _modify_run(
    gateway: TerminusGateway,
    run_id: str,
    change: Callable[[MigrationRunRecord], dict[str, Any] | None],
    message: str,
) -> MigrationRunRecord:
    """Read, change, write under optimistic concurrency; ``change`` returning None leaves the run as it is."""

    def attempt() -> MigrationRunRecord:
        # a missing run raises DocumentNotFound naming its id
        doc, version = gateway.get_document(run_document_id(run_id), branch=MIGRATIONS_BRANCH)
        current = MigrationRunRecord.from_document(doc)
        changes = change(current)
        if changes is None:
            return current
        updated = MigrationRunRecord.model_validate({**current.model_dump(), **changes})
        gateway.replace_documents(
            [updated.to_document()],
            author=METADATA_AUTHOR,
            message=message,
            data_version=version,
            branch=MIGRATIONS_BRANCH,
        )
        return updated

    return retry_on_conflict(attempt, what=f"Run {run_id}")


def run_status(report: RunReport) -> RunStatus:
    """The history's status of a run, from its report (a stop reads the error's category, core.errors)."""
    if report.approval.timed_out:
        return "timed_out"
    if report.status == "failed" and report.errors and report.errors[-1].category == "stopped":
        return "stopped"
    return report.status


def record_of(report: RunReport, report_path: str | None) -> MigrationRunRecord:
    """The ``MigrationRun`` record of a run, written whole from its report so the two never disagree."""
    if isinstance(report, MigrationReport):
        fingerprint = report.plan.fingerprint if report.plan else ""
        states: dict[str, TypeState] = (
            {t.name: t.state for t in report.plan.types if t.state != "not_applicable"} if report.plan else {}
        )
        mode: RunMode = report.mode
    elif isinstance(report, RollbackReport):
        fingerprint, mode = "", "rollback"
        states = {name: report.type_states.get(name, "pending") for name in report.removals}
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


def reconcile_dead_runs(
    gateway: TerminusGateway,
    database: str,
    *,
    alive_run_id: str,
    log: Sequence[Commit],
    closed: Callable[[MigrationRunRecord], MigrationRunRecord | None] = lambda run: None,
) -> list[MigrationRunRecord]:
    """Mark every other unfinished run of ``database`` ``crashed``, its per-type states read from ``log``.

    Call it holding the database's lease: no other run of the database can then be working, so a record
    still ``running`` or ``awaiting_approval`` belongs to a run that died without closing its books. The
    branch log, not the dead run's last word, says what it applied. ``closed(run)`` may give the record the
    run's own final report implies (it finished but could not write its record): that one is stored instead.
    Returns the records as now stored.
    """
    reconciled = []
    for run in list_runs(gateway, database=database, limit=1000):
        if run.run_id == alive_run_id or run.status not in UNFINISHED or run.mode == "dry_run":
            continue

        def crashed(current: MigrationRunRecord) -> dict[str, Any] | None:
            changed = classes_changed_by_run(log, current.run_id)
            if current.status not in UNFINISHED:
                return None  # it closed its books meanwhile
            states = {name: "applied" if name in changed.classes else "pending" for name in current.type_states}
            applied = sum(state == "applied" for state in states.values())
            return {
                "status": "crashed",
                "type_states": states,
                "head_commit_after": changed.last_commit or current.head_commit_before,
                "finished_at": current.finished_at or utc_now(),
                "error": (
                    f"The run ended without finishing ({current.status}); reconciled by run {alive_run_id} "
                    f"from the branch log: {applied} of {len(states)} types applied."
                ),
            }

        stored = _modify_run(gateway, run.run_id, crashed, f"Run {run.run_id} reconciled as crashed")
        if stored.status != run.status:
            reconciled.append(stored)
    return reconciled


def _parse_or_skip(doc: dict[str, Any]) -> MigrationRunRecord | None:
    try:
        return MigrationRunRecord.from_document(doc)
    except (ValidationError, ValueError, KeyError) as exc:
        logger.warning("Skipping unreadable migration run document %s: %s", doc.get("@id"), exc)
        return None
