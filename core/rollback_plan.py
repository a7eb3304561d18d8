"""What rolling back an audit-fields run means, computed from its report: the reverse of what it applied.

Two strategies. ``remove_fields`` (default): ``DeleteClassProperty`` for exactly the fields that run added,
on exactly the types it patched — later data and schema changes survive. ``reset``: move the branch back to
the snapshot's commit; only safe when nothing was committed after the migration, and refused otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from core.audit_fields import AUDIT_FIELDS
from core.errors import RollbackRefused
from core.migration_plan import AddAuditFields, RemoveAuditFields

Strategy = Literal["remove_fields", "reset"]

APPLIED_STATES = (
    "applied",
    "applying",
    "failed",
)  # "applying"/"failed": the call may have landed; re-checked


class RollbackPlan(BaseModel):
    source_report: str
    database: str
    branch: str
    strategy: Strategy
    snapshot_path: str | None
    reset_to_commit: str | None = None
    removals: list[RemoveAuditFields]

    def to_markdown(self) -> str:
        lines = [f"# Roll back audit fields on `{self.database}@{self.branch}`", ""]
        if self.strategy == "reset":
            lines.append(
                f"**Reset** the branch to commit `{self.reset_to_commit}` (the snapshot taken before the run)."
            )
        else:
            fields = sum(len(r.fields) for r in self.removals)
            lines.append(f"**Remove {fields} fields** from {len(self.removals)} types (one commit per type).")
        lines += [
            "",
            f"From report `{self.source_report}`.",
            "",
            "| type | fields removed |",
            "| --- | --- |",
        ]
        lines += [f"| {r.class_name} | {', '.join(sorted(r.fields))} |" for r in self.removals]
        return "\n".join(lines)


def own_properties(schema: list[dict[str, Any]]) -> dict[str, set[str]]:
    return {
        str(doc["@id"]): {key for key in doc if not key.startswith("@")}
        for doc in schema
        if isinstance(doc.get("@id"), str)
    }


def applied_operations(report: dict[str, Any]) -> list[AddAuditFields]:
    """The forward operations the run (maybe) applied, rebuilt from the report's per-type states."""
    operations = []
    for entry in report.get("plan", {}).get("types", []):
        if entry.get("state") in APPLIED_STATES and entry.get("missing_fields"):
            fields = {name: AUDIT_FIELDS[name] for name in entry["missing_fields"] if name in AUDIT_FIELDS}
            if fields:
                operations.append(AddAuditFields(class_name=entry["name"], fields=fields))
    return operations


def plan_rollback(
    report: dict[str, Any],
    *,
    source: str,
    current_schema: list[dict[str, Any]],
    current_head: str,
    reset: bool = False,
) -> RollbackPlan:
    """Refuses (RollbackRefused) what would be unsafe or meaningless, saying what to do instead."""
    if report.get("mode") != "execute":
        raise RollbackRefused(
            f"{source} is a dry-run report: that run changed nothing, so there is nothing to roll back."
        )
    present = own_properties(current_schema)
    removals = []
    for operation in applied_operations(report):
        reverse = operation.reverse()
        still_there = {
            name: rng for name, rng in reverse.fields.items() if name in present.get(reverse.class_name, set())
        }
        if still_there:
            removals.append(RemoveAuditFields(class_name=reverse.class_name, fields=still_there))
    plan = RollbackPlan(
        source_report=source,
        database=report["database"],
        branch=report["branch"],
        strategy="reset" if reset else "remove_fields",
        snapshot_path=report.get("snapshot_path"),
        removals=removals,
    )
    if reset:
        after, before = report.get("head_commit_after"), report.get("head_commit_before")
        if not before or not plan.snapshot_path:
            raise RollbackRefused(f"{source} names no snapshot commit to reset to; roll back without --reset.")
        if current_head != after:
            raise RollbackRefused(
                f"The branch head is {current_head}, not the migration's final commit {after}: other commits "
                "followed the migration and a reset would discard them. Roll back without --reset."
            )
        plan.reset_to_commit = before
    elif not removals:
        raise RollbackRefused(
            f"None of the fields added by the run in {source} are still in the schema; nothing to do."
        )
    return plan
