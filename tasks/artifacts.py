"""What a person sees in the Prefect UI: the plan, patch progress and the final report, readable at a glance."""

from __future__ import annotations

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
from core.migration_report import MigrationReport

PLAN_KEY = "audit-fields-plan"
REPORT_KEY = "audit-fields-report"


def publish_plan(plan: MigrationPlan) -> None:
    create_markdown_artifact(
        markdown=plan.to_markdown(), key=PLAN_KEY, description=f"Audit-fields plan for {plan.database}"
    )
    create_table_artifact(
        table=[{str(k): v for k, v in row.items()} for row in plan.analysis.to_frame().to_dict(orient="records")],
        key=f"{PLAN_KEY}-types",
        description="Every schema document and what the plan does with it",
    )


def start_progress(total: int) -> UUID:
    artifact_id: UUID = create_progress_artifact(progress=0.0, description=f"Patched 0 of {total} types")  # type: ignore[assignment]
    return artifact_id


def advance_progress(artifact_id: UUID, done: int, total: int, current: str) -> None:
    update_progress_artifact(
        artifact_id=artifact_id,
        progress=100.0 * done / total if total else 100.0,
        description=f"Patched {done} of {total} types (last: {current})",
    )


def report_markdown(report: MigrationReport, path: Path) -> str:
    lines = [
        f"# Audit-fields migration: {report.status}",
        "",
        f"**{report.mode}** on `{report.database}@{report.branch}` (env `{report.env}`), run `{report.run_id}`",
        "",
        f"- head commit: `{report.head_commit_before}` -> `{report.head_commit_after or report.head_commit_before}`",
        f"- report: `{path.name}`",
    ]
    if report.plan is not None:
        lines.append(
            f"- plan `{report.plan.fingerprint[:12]}`: {report.plan.operations} types to patch, "
            f"estimated {report.plan.estimated_duration_seconds:.2f} s"
        )
    if report.approval.required:
        who = report.approval.approver or "nobody"
        answer = "timed out" if report.approval.timed_out else (report.approval.decision or "pending")
        lines.append(
            f"- approval: {answer} by {who}" + (f" ({report.approval.comment})" if report.approval.comment else "")
        )
    if report.validation is not None:
        lines += ["", "| check | ok | detail |", "| --- | --- | --- |"]
        lines += [f"| {c.name} | {'yes' if c.ok else 'NO'} | {c.detail} |" for c in report.validation.checks]
    if report.errors:
        lines += ["", "## Errors", *(f"- **{e.type}**: {e.message}" for e in report.errors)]
    return "\n".join(lines)


def publish_report(report: MigrationReport, path: Path) -> None:
    create_markdown_artifact(markdown=report_markdown(report, path), key=REPORT_KEY, description=f"Report {path.name}")
    create_link_artifact(link=path.resolve().as_uri(), link_text=path.name, description="The JSON report")
