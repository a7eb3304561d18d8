"""Rich renderings of plans, reports and run history for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.audit_fields import AUDIT_FIELDS

console = Console()
err_console = Console(stderr=True)


def reset_consoles() -> None:
    """Let both consoles look at their streams and the environment again (a warm runner's child takes over
    another process's terminal and variables: colours, width and ``NO_COLOR`` are read when a console is made)."""
    Console.__init__(console)
    Console.__init__(err_console, stderr=True)


def fields_text(fields: list[str]) -> str:
    """``all 6`` rather than six long names when every audit field is meant."""
    if set(fields) == set(AUDIT_FIELDS):
        return f"all {len(AUDIT_FIELDS)}"
    return ", ".join(fields) or "-"


def plan_table(report: dict[str, Any]) -> Table:
    plan = report.get("plan") or {}
    executed = report.get("mode") == "execute"
    table = Table(title=f"Plan {str(plan.get('fingerprint', ''))[:12]} for {report['database']}@{report['branch']}")
    table.add_column("type", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("fields", no_wrap=True)
    table.add_column("docs", justify="right", no_wrap=True)
    if executed:
        table.add_column("state", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for entry in plan.get("types", []):
        fields = fields_text(entry.get("missing_fields", [])) if entry["action"] == "patch" else "-"
        row = [entry["name"], entry["action"], fields, str(entry.get("document_count", 0))]
        if executed:
            row.append("" if entry.get("state") == "not_applicable" else entry.get("state", ""))
        table.add_row(*row, entry["reason"])
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
        ("server", f"{report.get('terminus_url')} (settings from {report.get('config_source')})"),
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
    from rich.markdown import Markdown  # markdown-it: only when a plan is shown for approval

    console.print(Markdown(text))
