"""Rich renderings of plans, reports and run history for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def plan_table(report: dict[str, Any]) -> Table:
    plan = report.get("plan") or {}
    table = Table(title=f"Plan {str(plan.get('fingerprint', ''))[:12]} for {report['database']}@{report['branch']}")
    for column in ("type", "action", "reason", "missing fields", "documents", "state"):
        table.add_column(column, overflow="fold", justify="right" if column == "documents" else "left")
    for entry in plan.get("types", []):
        table.add_row(
            entry["name"],
            entry["action"],
            entry["reason"],
            ", ".join(entry.get("missing_fields", [])) or "-",
            str(entry.get("document_count", 0)),
            entry.get("state", ""),
        )
    return table


def summary_table(report: dict[str, Any], path: Path) -> Table:
    table = Table(title="Audit-fields run", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    plan = report.get("plan") or {}
    approval = report.get("approval") or {}
    rows = [
        ("status", report.get("status", "?")),
        ("mode", report.get("mode", "?")),
        ("database", f"{report.get('database')}@{report.get('branch')} (env {report.get('env')})"),
        (
            "head commit",
            f"{report.get('head_commit_before')} -> {report.get('head_commit_after') or '(unchanged)'}",
        ),
        (
            "plan",
            f"{plan.get('operations', 0)} types to patch, est. {plan.get('estimated_duration_seconds', 0):.2f} s",
        ),
    ]
    if approval.get("required"):
        decision = "timed out" if approval.get("timed_out") else approval.get("decision") or "none"
        rows.append(("approval", f"{decision} by {approval.get('approver') or '-'} via {approval.get('via') or '-'}"))
    validation = report.get("validation")
    if validation:
        failed = [c["name"] for c in validation.get("checks", []) if not c.get("ok")]
        rows.append(("validation", "ok" if validation.get("ok") else f"FAILED: {', '.join(failed)}"))
    for error in report.get("errors", []):
        rows.append(("error", f"{error['type']}: {error['message']}"))
    rows.append(("report", str(path)))
    for what, value in rows:
        table.add_row(what, str(value))
    return table


def show_markdown(text: str) -> None:
    console.print(Markdown(text))
