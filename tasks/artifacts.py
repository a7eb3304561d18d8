"""What a person sees in the Prefect UI: the plan, patch progress and the final report, readable at a glance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from core.migration_plan import MigrationPlan
from core.migration_report import MigrationReport, RollbackReport, RunReport

PLAN_KEY = "audit-fields-plan"
REPORT_KEY = "audit-fields-report"
ROLLBACK_PLAN_KEY = "audit-fields-rollback-plan"
ROLLBACK_REPORT_KEY = "audit-fields-rollback-report"


def publish_plan(plan: MigrationPlan) -> None:
    create_markdown_artifact(
        markdown=plan.to_markdown(), key=PLAN_KEY, description=f"Audit-fields plan for {plan.database}"
    )
    create_table_artifact(
        table=plan.analysis.to_rows(),
        key=f"{PLAN_KEY}-types",
        description="Every schema document and what the plan does with it",
    )


PROGRESS_INTERVAL_SECONDS = 1.0
"""Least time between two progress updates: each is an API call costing about as much as patching a type."""


@dataclass
class PatchProgress:
    """The patch-progress artifact of a run, updated at most every PROGRESS_INTERVAL_SECONDS (and at the end)."""

    artifact_id: UUID
    total: int
    updated_at: float = field(default_factory=time.monotonic)

    def advance(self, done: int, current: str) -> None:
        now = time.monotonic()
        if done < self.total and now - self.updated_at < PROGRESS_INTERVAL_SECONDS:
            return
        update_progress_artifact(
            artifact_id=self.artifact_id,
            progress=100.0 * done / self.total if self.total else 100.0,
            description=f"Patched {done} of {self.total} types (last: {current})",
        )
        self.updated_at = now


def start_progress(total: int) -> PatchProgress:
    artifact_id: UUID = create_progress_artifact(progress=0.0, description=f"Patched 0 of {total} types")  # type: ignore[assignment]
    return PatchProgress(artifact_id, total)


def report_markdown(report: RunReport, path: Path) -> str:
    rollback = isinstance(report, RollbackReport)
    lines = [
        f"# Audit-fields {'rollback' if rollback else 'migration'}: {report.status}",
        "",
        f"**{report.mode}** on `{report.database}@{report.branch}` (env `{report.env}`: {report.terminus_url}, "
        f"from {report.config_source}), run `{report.run_id}`",
        "",
        f"- head commit: `{report.head_commit_before}` -> `{report.head_commit_after or report.head_commit_before}`",
        f"- report: `{path.name}`",
    ]
    if isinstance(report, MigrationReport) and report.plan is not None:
        lines.append(
            f"- plan `{report.plan.fingerprint[:12]}`: {report.plan.operations} types to patch, "
            f"estimated {report.plan.estimated_duration_seconds:.2f} s"
        )
    if isinstance(report, RollbackReport):
        removed = ", ".join(f"{name} ({len(fields)})" for name, fields in report.removals.items()) or "nothing"
        lines.append(f"- {report.strategy}: {removed}")
        lines.append(f"- DLQ files archived: {len(report.archived_dlq_files)}")
    if report.approval.required:
        who = report.approval.approver or "nobody"
        answer = "timed out" if report.approval.timed_out else (report.approval.decision or "pending")
        comment = f" ({report.approval.comment})" if report.approval.comment else ""
        lines.append(f"- approval: {answer} by {who}{comment}")
    if report.validation is not None:
        lines += ["", "| check | ok | detail |", "| --- | --- | --- |"]
        lines += [f"| {c.name} | {'yes' if c.ok else 'NO'} | {c.detail} |" for c in report.validation.checks]
    warnings = getattr(report, "warnings", [])
    if warnings:
        lines += ["", "## Warnings", *(f"- {w}" for w in warnings)]
    if report.errors:
        lines += ["", "## Errors", *(f"- **{e.type}**: {e.message}" for e in report.errors)]
    return "\n".join(lines)


def publish_report(report: RunReport, path: Path) -> None:
    key = ROLLBACK_REPORT_KEY if isinstance(report, RollbackReport) else REPORT_KEY
    create_markdown_artifact(markdown=report_markdown(report, path), key=key, description=f"Report {path.name}")
    create_link_artifact(link=path.resolve().as_uri(), link_text=path.name, description="The JSON report")


def publish_rollback_plan(markdown: str) -> None:
    create_markdown_artifact(markdown=markdown, key=ROLLBACK_PLAN_KEY, description="What the rollback will do")
