"""``oms-audit``: the command line of the audit-fields jobs.

Exit codes: 0 ok, 1 failed, 2 bad usage or configuration, 3 rejected or stopped (drift, lease held, conflict).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from click.exceptions import Abort

from core.errors import ApprovalTimedOut, ConfigError, OmsAuditError

from . import service_commands
from .approve_command import approve
from .block_commands import blocks_app
from .dlq import dlq_app
from .outcome import EXIT_OK, EXIT_USAGE, exit_code, exit_code_of, failure_of, find_report
from .prefect_api import start_prefect_api
from .prompt import TerminalAnswer
from .render import console, err_console, plan_table, summary_table
from .run_view import RunView
from .runner_commands import runner_app

app = typer.Typer(
    help="Secure author tracking for an ontology store in TerminusDB, as Prefect-orchestrated jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(dlq_app, name="dlq")
app.add_typer(runner_app, name="runner")

EnvOption = Annotated[str, typer.Option("--env", help="Environment: Prefect block of that name, else env vars.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Approve without asking (recorded as such).")]
ReportsDirOption = Annotated[
    Path | None,
    typer.Option("--reports-dir", help="Where reports go (default OMS_AUDIT_REPORTS_DIR or '.')."),
]


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def check_reports_dir(directory: Path) -> Path:
    """The reports folder exists (created if need be) and takes a file, or exit 2 before anything runs."""
    try:
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"{directory} is a file")
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".oms-audit-write-check-"):
            pass
    except OSError as exc:
        raise fail(
            f"the reports directory {directory} cannot be written ({exc.strerror or exc}); set "
            "OMS_AUDIT_REPORTS_DIR or pass --reports-dir to a directory you can write"
        ) from exc
    return directory


def preflight(
    env: str, *, database: str | None = None, branch: str | None = None, reports_dir: Path | None = None
) -> Path:
    """Exit 2 on every configuration error this process can see by itself, before any Prefect starts:
    the environment's name, the environment variables, empty or forbidden names, the reports folder."""
    from core.settings import (
        MigrationSettings,
        TerminusSettings,
        check_env_name,
        check_target_names,
        load_settings,
    )

    from .prefect_api import idle_seconds
    from .runner_client import idle_seconds as runner_idle_seconds

    try:
        check_env_name(env)
        check_target_names(load_settings(TerminusSettings), database, branch)
        directory = reports_dir or load_settings(MigrationSettings).reports_dir
        idle_seconds()
        runner_idle_seconds()
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    return check_reports_dir(directory)


def preflight_env(env: str) -> None:
    """The environment's name and variables, before Prefect starts (exit 2)."""
    from core.settings import TerminusSettings, check_env_name, load_settings

    try:
        check_env_name(env)
        load_settings(TerminusSettings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def check_env_is_configured(env: str) -> None:
    """Exit 2 at once for an environment nothing configures, when that can be told without Prefect: no
    ``TERMINUS_DB_URL``, and an API that already answers says it has no block of that name (one GET).
    Otherwise :func:`check_configuration` decides, once Prefect is imported and the API is up."""
    from core.settings import LOCAL_ENV, TERMINUS_BLOCK_SLUG, explicit_terminus_url, unconfigured_terminus

    from .prefect_api import block_document_exists

    if env == LOCAL_ENV or explicit_terminus_url():
        return  # a missing block is no error here: nothing to find out early
    if block_document_exists(TERMINUS_BLOCK_SLUG, env) is False:
        raise fail(str(unconfigured_terminus(env)))


def check_configuration(env: str, *, database: str | None = None, branch: str | None = None) -> None:
    """After the Prefect API is up: the environment resolves to a block or to TERMINUS_DB_URL (or exit 2)."""
    from blocks.environment import resolve_terminus
    from core.settings import check_target_names

    from .prefect_api import ensure_prefect_api

    ensure_prefect_api()
    try:
        check_target_names(resolve_terminus(env).settings, database, branch)
    except ConfigError as exc:
        raise fail(str(exc)) from exc


EXIT_INTERRUPTED = 130  # killed by SIGINT, as a shell reports it


def say_stopping() -> None:
    err_console.print(
        "[yellow]Ctrl-C: stopping after the step in progress (the type being patched finishes and is "
        "recorded; the lease is released). Press Ctrl-C again to abort at once.[/yellow]"
    )


def aborted() -> typer.Exit:
    """A second Ctrl-C: the run is marked Cancelled and this process ends now."""
    return fail(
        "aborted at the terminal; the run was marked Cancelled and its lease is taken over by the next run. "
        "A schema change in flight may still land. Run the same command again: it finishes the job and "
        "validates the result.",
        EXIT_INTERRUPTED,
    )


def finish(state: Any, reports_dir: Path, run_id: Any, prefix: str, *, show_plan: bool) -> None:
    path = find_report(reports_dir, run_id, prefix)
    report: dict[str, Any] = {}
    if path is not None:
        report = json.loads(path.read_text(encoding="utf-8"))
        if show_plan and report.get("plan"):
            console.print(plan_table(report))
        console.print(summary_table(report, path))
    code = exit_code(state)
    if code != EXIT_OK:
        error = failure_of(state)
        message = str(error) if error is not None else (state.message or state.name)
        approval = report.get("approval") or {}
        if isinstance(error, ApprovalTimedOut) or approval.get("timed_out"):
            # the report says so reliably; Prefect may overwrite the final state's message (a timed-out pause)
            seconds = approval.get("timeout_seconds") or getattr(error, "timeout_seconds", 0)
            message = f"the approval timed out after {seconds:g} s; nothing was changed"
        err_console.print(f"[red]{state.name}:[/red] {message}")
    raise typer.Exit(code)


@app.command()
def migrate(
    env: EnvOption = "local",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Analyse and plan only; change nothing.")] = False,
    execute: Annotated[bool, typer.Option("--execute", help="Apply the plan after approval.")] = False,
    yes: YesOption = False,
    database: Annotated[str | None, typer.Option("--database", help="Database (default TERMINUS_DB_NAME).")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Branch (default TERMINUS_DB_BRANCH).")] = None,
    reports_dir: ReportsDirOption = None,
    include: Annotated[list[str] | None, typer.Option("--include", help="Only this type (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave this type alone (repeatable).")] = None,
    approval_timeout: Annotated[int, typer.Option(help="Seconds to wait for approval.")] = 3600,
) -> None:
    """Add the audit fields to every document type: --dry-run first, then --execute."""
    if dry_run == execute:
        raise fail("choose exactly one of --dry-run or --execute")
    directory = preflight(env, database=database, branch=branch, reports_dir=reports_dir)
    start_prefect_api()  # boots while the flow's modules are imported
    check_env_is_configured(env)
    from cli.flow_runner import run_flow
    from core.migration_report import REPORT_PREFIX
    from flows.audit_fields_migration import audit_fields_migration

    check_configuration(env, database=database, branch=branch)

    view = RunView(directory, REPORT_PREFIX)
    parameters = {
        "env": env,
        "dry_run": dry_run,
        "database": database,
        "branch": branch,
        "include": include or [],
        "exclude": exclude or [],
        "approval_timeout_seconds": approval_timeout,
        "approval_poll_seconds": 1,
        "reports_dir": str(directory),
        "triggered_by": getpass.getuser(),
    }
    try:
        outcome = run_flow(
            audit_fields_migration,
            parameters,
            answer=TerminalAnswer(yes=yes, what="plan"),
            on_tick=view.tick,
            on_stop_requested=say_stopping,
            heartbeats=not dry_run,
        )
    except KeyboardInterrupt:
        raise aborted() from None
    finally:
        view.stop()
    finish(outcome.state, directory, outcome.flow_run_id, REPORT_PREFIX, show_plan=True)


@app.command()
def rollback(
    report: Annotated[Path, typer.Option("--report", help="The migration's JSON report.")],
    env: EnvOption = "local",
    reset: Annotated[bool, typer.Option("--reset", help="Reset the branch to the snapshot's commit.")] = False,
    yes: YesOption = False,
    reports_dir: ReportsDirOption = None,
    dlq_dir: Annotated[Path | None, typer.Option("--dlq-dir", help="DLQ folder to archive.")] = None,
    approval_timeout: Annotated[int, typer.Option(help="Seconds to wait for approval.")] = 3600,
) -> None:
    """Undo an audit-fields run from its report (after approval); archives the DLQ."""
    if not report.is_file():
        raise fail(f"report {report} does not exist; pass the path printed by the migration")
    directory = preflight(env, reports_dir=reports_dir)
    start_prefect_api()
    check_env_is_configured(env)
    from cli.flow_runner import run_flow
    from core.migration_report import ROLLBACK_REPORT_PREFIX
    from flows.audit_fields_rollback import audit_fields_rollback

    check_configuration(env)

    parameters = {
        "report": str(report),
        "env": env,
        "reset": reset,
        "approval_timeout_seconds": approval_timeout,
        "approval_poll_seconds": 1,
        "reports_dir": str(directory),
        "dlq_dir": str(dlq_dir) if dlq_dir else None,
        "triggered_by": getpass.getuser(),
    }
    console.print(f"Rolling back the run of {report.name}…")
    try:
        outcome = run_flow(
            audit_fields_rollback,
            parameters,
            answer=TerminalAnswer(yes=yes, what="rollback"),
            on_stop_requested=say_stopping,
        )
    except KeyboardInterrupt:
        raise aborted() from None
    finish(outcome.state, directory, outcome.flow_run_id, ROLLBACK_REPORT_PREFIX, show_plan=False)


@app.command()
def history(
    env: EnvOption = "local",
    database: Annotated[str | None, typer.Option("--database", help="Only runs on this database.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
) -> None:
    """Past migration runs, from the metadata database."""
    from rich.table import Table

    from blocks.environment import resolve_terminus
    from core.run_history import list_runs
    from core.terminus import TerminusGateway

    from .prefect_api import ensure_prefect_api

    preflight_env(env)
    ensure_prefect_api()
    try:
        settings = resolve_terminus(env).settings
        with TerminusGateway(settings, database=settings.meta_database) as gateway:
            runs = list_runs(gateway, database=database, limit=limit) if gateway.database_exists() else []
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    except OmsAuditError as exc:
        raise fail(str(exc), exit_code_of(exc)) from exc
    table = Table(title=f"Migration runs ({settings.meta_database})")
    for column in (
        "started",
        "run",
        "database",
        "mode",
        "status",
        "triggered by",
        "approved by",
        "fingerprint",
    ):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            run.run_id[:8],
            f"{run.database}@{run.branch}",
            run.mode,
            run.status,
            run.triggered_by or "-",
            run.approved_by or "-",
            (run.fingerprint or "")[:12],
        )
    console.print(table if runs else "No migration runs recorded yet.")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox(ctx: typer.Context) -> None:
    """Run the local TerminusDB-compatible sandbox (arguments as for `python -m sandbox`)."""
    os.execv(sys.executable, [sys.executable, "-m", "sandbox", *ctx.args])


@app.command()
def demo(
    ask: Annotated[bool, typer.Option("--ask", help="Ask at the terminal instead of approving with --yes.")] = False,
    reports_dir: Annotated[Path, typer.Option("--reports-dir")] = Path("demo-reports"),
) -> None:
    """End to end on embedded defaults: sandbox with the demo ontology, dry run, approved execution, report."""
    from cli.demo import run_demo

    raise typer.Exit(run_demo(reports_dir=reports_dir, ask=ask))


app.command()(service_commands.serve)
app.command()(service_commands.freeze)
app.command()(approve)
app.add_typer(blocks_app, name="blocks")


def main(argv: list[str] | None = None) -> int:
    """Entry point for scripts that wrap the CLI (the guide's migration script): usage errors are shown as
    ``oms-audit`` shows them (message, exit 2), never as a traceback."""
    try:
        code = app(args=argv, standalone_mode=False, prog_name="oms-audit")
    except typer.Exit as exc:
        return exc.exit_code
    except (Abort, typer.Abort):
        return 1
    except Exception as exc:
        # Usage errors of typer's own click (not the ``click`` package): show them as ``oms-audit`` does.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        raise
    return code if isinstance(code, int) else EXIT_OK
