"""The JSON report every audit-fields run leaves behind (DESIGN §4), dry run or execution, success or not.

One run owns one report file, ``migration_report_audit_fields_<YYYYmmdd_HHMMSS>.json`` in the reports
directory; it is rewritten (atomically) as the run moves on, so a crash still leaves the last known state.
The report holds no secrets: it is built from plans, decisions and our own error messages, never settings.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.errors import ErrorCategory, category_of
from core.migration_plan import MigrationPlan
from core.schema_analysis import SchemaAnalysis
from core.timestamps import file_stamp, utc_now

REPORT_PREFIX = "migration_report_audit_fields_"
ROLLBACK_REPORT_PREFIX = "rollback_report_audit_fields_"

ReportMode = Literal["dry_run", "execute"]
ReportStatus = Literal["planned", "awaiting_approval", "running", "succeeded", "failed", "rejected", "cancelled"]
FINAL_STATUSES = ("planned", "succeeded", "failed", "rejected", "cancelled")
#: how far one type got; the one progress vocabulary of reports and the run history alike
TypeState = Literal["pending", "applying", "applied", "failed", "not_applicable"]


class TypeEntry(BaseModel):
    """One schema document as the plan saw it, and (for executions) how far patching got."""

    name: str
    action: str
    reason: str
    missing_fields: list[str] = Field(default_factory=list)
    document_count: int = 0
    state: TypeState = "not_applicable"


class PlanSection(BaseModel):
    fingerprint: str
    estimated_duration_seconds: float
    estimate_basis: str = ""
    operations: int = 0
    types: list[TypeEntry] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, plan: MigrationPlan) -> PlanSection:
        """The plan as the report shows it: every type's classification, patched types ``pending``."""
        to_patch = {op.class_name: sorted(op.fields) for op in plan.operations}
        return cls(
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

    @classmethod
    def blocked(cls, analysis: SchemaAnalysis) -> PlanSection:
        """What the report shows when conflicts block the plan: every type's classification and each conflict."""
        return cls(
            fingerprint="",
            estimated_duration_seconds=0.0,
            estimate_basis="no plan: conflicting audit-field declarations block it",
            types=[
                TypeEntry(name=t.name, action=str(t.action), reason=t.reason, document_count=t.document_count)
                for t in analysis.types
            ],
            conflicts=[c.message for c in analysis.conflicts],
        )

    def entry(self, name: str) -> TypeEntry:
        return next(t for t in self.types if t.name == name)


class ApprovalSection(BaseModel):
    required: bool
    decision: Literal["approve", "reject"] | None = None
    approver: str | None = None
    comment: str | None = None
    via: str | None = None
    decided_at: datetime | None = None
    timed_out: bool = False
    timeout_seconds: int | None = None
    verified: bool = False
    """True when the answer carried a token the IAM verified with role ``schema:approve``."""
    approver_id: str | None = None
    """The verified token's ``sub`` (None for an unverified answer)."""
    refused: list[str] = []
    """Answers refused while the run kept waiting (bad token, policy), each with its reason; never a token."""

    @property
    def recorded_approver(self) -> str | None:
        """The approver as the history stores it: ``alice (verified: u-123)`` or the typed name."""
        if self.approver and self.verified:
            return f"{self.approver} (verified: {self.approver_id})"
        return self.approver


class ValidationCheck(BaseModel):
    name: str
    ok: bool
    detail: str = ""


class ValidationSection(BaseModel):
    ok: bool
    checks: list[ValidationCheck] = Field(default_factory=list)


class ErrorEntry(BaseModel):
    type: str
    message: str
    #: the error's category (core.errors), so the history's status and the exit code agree with the report
    category: ErrorCategory = "failed"
    at: datetime = Field(default_factory=utc_now)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorEntry:
        return cls(type=type(exc).__name__, message=str(exc), category=category_of(exc))


class RunReport(BaseModel):
    """What every audit-fields run reports, migration or rollback (field order is the JSON's order)."""

    report_version: int = 1
    mode: str
    status: ReportStatus
    env: str
    database: str = ""
    branch: str = ""
    terminus_url: str | None = None
    config_source: str | None = None
    run_id: str
    flow_run_id: str | None = None
    triggered_by: str | None = None
    service_account: str
    started_at: datetime
    finished_at: datetime | None = None
    head_commit_before: str | None = None
    head_commit_after: str | None = None
    snapshot_path: str | None = None
    approval: ApprovalSection
    validation: ValidationSection | None = None
    warnings: list[str] = Field(default_factory=list)
    errors: list[ErrorEntry] = Field(default_factory=list)


class MigrationReport(RunReport):
    mode: ReportMode
    plan: PlanSection | None = None


def report_path(directory: Path, started_at: datetime, prefix: str = REPORT_PREFIX) -> Path:
    """A fresh report path for a run starting now; a second run in the same second takes the next second."""
    directory.mkdir(parents=True, exist_ok=True)
    at = started_at
    while True:
        candidate = directory / f"{prefix}{file_stamp(at)}.json"
        try:
            candidate.touch(exist_ok=False)  # claim the name so a concurrent run cannot take it too
        except FileExistsError:
            at += timedelta(seconds=1)
            continue
        return candidate


def write_json_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_report(report: BaseModel, path: Path) -> Path:
    write_json_atomically(path, report.model_dump_json(indent=2))
    return path


class RollbackReport(RunReport):
    """What a rollback did; written as ``rollback_report_audit_fields_<YYYYmmdd_HHMMSS>.json``."""

    mode: Literal["rollback"] = "rollback"
    strategy: Literal["remove_fields", "reset"]
    source_report: str
    removals: dict[str, list[str]] = Field(default_factory=dict)
    #: how far each type of ``removals`` got
    type_states: dict[str, TypeState] = Field(default_factory=dict)
    archived_dlq_files: list[str] = Field(default_factory=list)
