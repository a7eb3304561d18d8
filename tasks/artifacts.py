"""What a person sees in the Prefect UI: the plan, patch progress and the final report, readable at a glance.

Every artifact is keyed per database (``audit-fields-plan-oms``…), so the UI's artifact pages show one
history per database, and nothing links to a file on the worker's disk (a browser cannot open it): the
report's content is an artifact itself. After planning, the run is renamed after its database, mode and
plan (``audit-fields-oms-execute-fd24eed0``) so runs can be told apart in the run list.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from core.migration_plan import MigrationPlan
from core.migration_report import MigrationReport, RollbackReport, RunReport
from core.rollback_plan import RollbackPlan

PLAN_KEY = "audit-fields-plan"
REPORT_KEY = "audit-fields-report"
ROLLBACK_PLAN_KEY = "audit-fields-rollback-plan"
ROLLBACK_REPORT_KEY = "audit-fields-rollback-report"


def artifact_key(base: str, database: str) -> str:
    """``base-<database>`` in the characters Prefect allows in a key (lowercase letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", database.lower()).strip("-") or "db"
    return f"{base}-{slug}"


def artifact_url(artifact_id: UUID | None) -> str | None:
    """The artifact's page in the Prefect UI (None when no UI URL is known, e.g. a temporary API)."""
    from prefect.settings import get_current_settings

    ui_url = get_current_settings().ui_url
    return f"{str(ui_url).rstrip('/')}/artifacts/artifact/{artifact_id}" if ui_url and artifact_id else None


def name_run(database: str, mode: str, fingerprint: str) -> None:
    """Rename the current flow run ``audit-fields-<db>-<mode>-<fp8>`` (best effort: a name is a courtesy)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from tasks.approval import short_fingerprint

    run_id = flow_run.get_id()
    if not run_id:
        return
    name = f"audit-fields-{database}-{mode}-{short_fingerprint(fingerprint)}"
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(run_id), name=name)
    except Exception as exc:  # the run goes on under its first name
        get_run_logger().warning("Could not rename the run to %s: %s", name, type(exc).__name__)


def publish_plan(plan: MigrationPlan, mode: str | None = None) -> str | None:
    """The full plan (markdown with every type, and a table); renames the run; returns the plan's UI URL."""
    from prefect.runtime import flow_run

    if mode is None:
        mode = "dry-run" if flow_run.parameters.get("dry_run", True) else "execute"
    name_run(plan.database, mode, plan.fingerprint)
    plan_id = create_markdown_artifact(
        markdown=plan.to_markdown(max_rows=None),
        key=artifact_key(PLAN_KEY, plan.database),
        description=f"Audit-fields plan for {plan.database}@{plan.branch}, fingerprint {plan.fingerprint[:8]}",
    )
    create_table_artifact(
        table=plan.analysis.to_rows(),
        key=artifact_key(f"{PLAN_KEY}-types", plan.database),
        description="Every schema document and what the plan does with it",
    )
    return artifact_url(plan_id)  # type: ignore[arg-type]


def migration_summary(plan: MigrationPlan, env: str) -> tuple[str, list[str]]:
    """The approval question and its few facts: what changes, how many types and documents."""
    patched = [t for t in plan.analysis.types if t.name in {op.class_name for op in plan.operations}]
    documents = sum(t.document_count for t in plan.analysis.types)
    names = ", ".join(f"`{t.name}`" for t in patched[:8]) + (
        f" and {len(patched) - 8} more" if len(patched) > 8 else ""
    )
    question = f"Add the six audit fields to `{plan.database}@{plan.branch}` (env `{env}`)?"
    facts = [
        plan.summary(),
        f"Types to patch: {names or 'none'}; {documents:,} documents in the database (none is rewritten).",
        f"One commit per type on head `{plan.head_commit[:12]}`; the schema is checked again before patching.",
    ]
    return question, facts


def rollback_summary(plan: RollbackPlan) -> tuple[str, list[str]]:
    question = f"Roll back the audit fields on `{plan.database}@{plan.branch}`?"
    if plan.strategy == "reset":
        facts = [f"**Reset** the branch to commit `{plan.reset_to_commit}` (the snapshot before the migration)."]
    else:
        fields = sum(len(r.fields) for r in plan.removals)
        facts = [f"**Remove {fields} fields** from {len(plan.removals)} types, one commit per type."]
    facts.append("Audit values written into these fields since the migration are deleted with them.")
    return question, facts


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


def start_progress(total: int, database: str = "unknown") -> PatchProgress:
    artifact_id: UUID = create_progress_artifact(  # type: ignore[assignment]
        progress=0.0, key=artifact_key("audit-fields-progress", database), description=f"Patched 0 of {total} types"
    )
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


REPORT_JSON_LIMIT = 200_000
"""Characters of the JSON report shown in its artifact (a huge ontology's report is cut, saying so)."""


def publish_report(report: RunReport, path: Path) -> None:
    """The report's summary and its JSON content, as artifacts (the file stays on the worker's disk)."""
    key = ROLLBACK_REPORT_KEY if isinstance(report, RollbackReport) else REPORT_KEY
    database = report.database or "unknown"
    create_markdown_artifact(
        markdown=report_markdown(report, path), key=artifact_key(key, database), description=f"Report {path.name}"
    )
    content = json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True)
    cut = len(content) > REPORT_JSON_LIMIT
    shown = content[:REPORT_JSON_LIMIT]
    note = (
        f"\n\n(cut at {REPORT_JSON_LIMIT:,} characters; the whole file is `{path.name}` on the worker)" if cut else ""
    )
    create_markdown_artifact(
        markdown=f"`{path.name}` (on the worker: `{path}`)\n\n```json\n{shown}\n```{note}",
        key=artifact_key(f"{key}-json", database),
        description=f"The JSON report {path.name}",
    )


def publish_rollback_plan(markdown: str, database: str = "unknown") -> str | None:
    plan_id = create_markdown_artifact(
        markdown=markdown, key=artifact_key(ROLLBACK_PLAN_KEY, database), description="What the rollback will do"
    )
    return artifact_url(plan_id)  # type: ignore[arg-type]
