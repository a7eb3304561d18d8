"""``oms-audit dlq …``: look at the audit dead-letter queue, sweep it, review its error patterns, redrive.

``stats``, ``patterns`` and ``redrive`` work on the folder directly (no Prefect); ``sweep`` runs the nightly
flow in this process with a progress bar. Exit codes as everywhere: 0 ok, 1 failed, 2 usage/config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from core.errors import DlqUnavailable, OmsAuditError

from .outcome import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exit_code, failure_of
from .render import console, err_console

dlq_app = typer.Typer(help="The audit dead-letter queue: stats, sweep, error patterns, redrive.", no_args_is_help=True)

DirOption = Annotated[Path | None, typer.Option("--dir", help="The DLQ folder (default OMS_AUDIT_DLQ_DIR, else /tmp).")]


def _dlq(directory: Path | None, *, writable: bool = False) -> Any:
    from core.dlq import DeadLetterQueue
    from core.settings import DlqSettings, load_settings

    try:
        dlq = DeadLetterQueue(directory or load_settings(DlqSettings).dlq_dir)
        dlq.check_writable() if writable else dlq.check_readable()
    except (DlqUnavailable, OmsAuditError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    return dlq


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@dlq_app.command()
def stats(
    directory: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Events and the oldest event's age per dlq_type."""
    from core.dlq_sweep import stats_summary

    dlq = _dlq(directory)
    summary = stats_summary(dlq)
    if as_json:
        typer.echo(json.dumps({"dlq_dir": str(dlq.directory), "types": summary}, indent=2))
        return
    table = Table(title=f"Audit DLQ in {dlq.directory}")
    table.add_column("dlq_type")
    table.add_column("events", justify="right")
    table.add_column("oldest enqueued")
    table.add_column("oldest age", justify="right")
    for dlq_type, item in summary.items():
        age = _age(item["oldest_age_seconds"]) if item["count"] else "-"
        table.add_row(dlq_type, str(item["count"]), item["oldest_enqueued_at"] or "-", age)
    console.print(table)


@dlq_app.command()
def sweep(
    env: Annotated[
        str, typer.Option("--env", help="Environment: Prefect block of that name, else env vars.")
    ] = "local",
    directory: DirOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what a sweep would do; change nothing.")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Events per sink call.")] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, help="Failed deliveries before poison (default 5).")
    ] = None,
) -> None:
    """Replay the DLQ into the audit sink, push DLQ metrics, notify alert changes (the nightly flow)."""
    dlq = _dlq(directory, writable=not dry_run)
    from cli.flow_runner import run_flow
    from flows.dlq_sweep import dlq_sweep
    from tasks import dlq_tasks

    from .prefect_api import ensure_prefect_api

    ensure_prefect_api()
    reports: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("[bold]sweeping[/bold]"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    bar = progress.add_task("sweep", total=None, counts="")

    def listen(kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            progress.update(bar, total=max(1, data["total_bytes"]), completed=0)
        elif kind == "advance":
            c = data["counts"]
            progress.update(
                bar,
                completed=data["done_bytes"],
                counts=f"replayed {c['replayed']} · re-queued {c['requeued']} · poison {c['poisoned']} · "
                f"corrupt {c['corrupt']}",
            )
        elif kind == "done":
            reports.append(data["report"])

    parameters = {
        "env": env,
        "dlq_dir": str(dlq.directory),
        "batch_size": batch_size,
        "max_attempts": max_attempts,
        "dry_run": dry_run,
    }
    dlq_tasks.LISTENERS.append(listen)
    try:
        with progress:
            outcome = run_flow(dlq_sweep, parameters, answer=None)
    finally:
        dlq_tasks.LISTENERS.remove(listen)
    if reports:
        _print_report(reports[-1])
    code = exit_code(outcome.state)
    if code != EXIT_OK:
        error = failure_of(outcome.state)
        message = str(error) if isinstance(error, BaseException) else (outcome.state.message or outcome.state.name)
        err_console.print(f"[red]{outcome.state.name}:[/red] {message}")
    raise typer.Exit(code)


def _print_report(report: dict[str, Any]) -> None:
    counts = report["counts"]
    table = Table(title=f"DLQ sweep{' (dry run)' if report['dry_run'] else ''}: {report['status']}")
    for name in ("files", "lines", "replayed", "requeued", "poisoned", "corrupt", "duplicates", "blank"):
        table.add_column(name, justify="right")
    table.add_row(
        *(
            str(counts[name])
            for name in ("files", "lines", "replayed", "requeued", "poisoned", "corrupt", "duplicates", "blank")
        )
    )
    console.print(table)
    left = ", ".join(f"{t}={item['count']}" for t, item in report["stats_after"].items())
    console.print(f"left in the DLQ: {left}; metrics: {report.get('metrics_push')}")


@dlq_app.command()
def patterns(
    directory: DirOption = None,
    dlq_type: Annotated[
        list[str] | None, typer.Option("--type", help="DLQ type(s) to read (default fallback and poison).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records instead of a table.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show.")] = 30,
) -> None:
    """The error-pattern table (by error type, action, resource type, actor kind, age band)."""
    from core.dlq_sweep import PATTERN_COLUMNS, PatternTally, inspect_dlq

    dlq = _dlq(directory)
    tally = PatternTally()
    counts = inspect_dlq(dlq, dlq_type or ["fallback", "poison"], tally)
    records = tally.records(limit)
    if as_json:
        typer.echo(json.dumps({"events": counts.replayed, "corrupt": counts.corrupt, "patterns": records}, indent=2))
        return
    table = Table(title=f"DLQ error patterns: {counts.replayed} events, {counts.corrupt} unparseable lines")
    for column in [*PATTERN_COLUMNS, "events", "share"]:
        table.add_column(column, justify="right" if column in ("events", "share") else "left")
    for row in records:
        table.add_row(*(str(row[c]) for c in PATTERN_COLUMNS), str(row["events"]), f"{row['share']:.1%}")
    console.print(table)


@dlq_app.command()
def redrive(
    directory: DirOption = None,
    from_type: Annotated[str, typer.Option("--from", help="poison (default) or corrupt.")] = "poison",
) -> None:
    """Move poison (or hand-fixed corrupt) lines back to fallback for the next sweep, once the cause is fixed."""
    from core.dlq_sweep import redrive as redrive_lines

    if from_type not in ("poison", "corrupt"):
        err_console.print(f"[red]error:[/red] --from must be 'poison' or 'corrupt', not {from_type!r}")
        raise typer.Exit(EXIT_USAGE)
    dlq = _dlq(directory, writable=True)
    try:
        with dlq.claimer() as claimer:
            counts = redrive_lines(claimer, from_type)
    except OmsAuditError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    console.print(
        f"Moved {counts.requeued} line(s) from {from_type} back to fallback; the next `oms-audit dlq sweep` "
        "replays them."
    )
