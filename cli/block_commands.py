"""``oms-audit blocks create|show --env NAME``: from the guide's environment variables to Prefect blocks.

Needs the Prefect API the jobs use (``PREFECT_API_URL``): the documents are created there, named ``NAME``,
and every job run with ``--env NAME`` (migration, rollback, sweep, service) reads them first.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from core.errors import ConfigError
from core.settings import (
    LOCAL_ENV,
    ApprovalSettings,
    DlqSettings,
    IamSettings,
    MigrationSettings,
    MonitoringSettings,
    TerminusSettings,
    check_env_name,
    explicit_terminus_url,
    load_settings,
)

from .outcome import EXIT_FAILED, EXIT_USAGE
from .render import console, err_console

blocks_app = typer.Typer(help="Configuration as Prefect blocks: create them from env vars, show what is used.")

EnvOption = Annotated[str, typer.Option("--env", help="Environment name: the block documents' name.")]
SHOWN_SETTINGS = (TerminusSettings, IamSettings, MonitoringSettings, DlqSettings, ApprovalSettings, MigrationSettings)


def _is_set(*variables: str) -> bool:
    wanted = {v.upper() for v in variables}
    return any(key.upper() in wanted and value.strip() for key, value in os.environ.items())


@blocks_app.command()
def create(
    env: EnvOption,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace documents that already exist.")] = False,
) -> None:
    """Create the block documents named ENV from this shell's environment variables (the guide's names)."""
    from prefect.blocks.core import Block

    from blocks.dlq import DlqConfig
    from blocks.environment import forget_blocks, load_block, webhook_from_url
    from blocks.iam import IamConfig
    from blocks.pushgateway import PushgatewayConfig
    from blocks.terminus_connection import TerminusConnection

    try:
        check_env_name(env)
        if env != LOCAL_ENV and not explicit_terminus_url():
            raise ConfigError(
                f"TERMINUS_DB_URL is not set: set it (and TERMINUS_DB_TOKEN, or TERMINUS_DB_USER and "
                f"TERMINUS_DB_PASSWORD) to the server of '{env}', then run this again",
                variable="TERMINUS_DB_URL",
            )
        terminus = load_settings(TerminusSettings)
        iam, monitoring, dlq = load_settings(IamSettings), load_settings(MonitoringSettings), load_settings(DlqSettings)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None

    documents: list[tuple[Block, str]] = [(TerminusConnection.from_settings(terminus), "TERMINUS_DB_*")]
    skipped: list[str] = []
    if iam.service_url or iam.jwks_url:
        documents.append((IamConfig.from_settings(iam), "IAM_*"))
    else:
        skipped.append("IAM (neither IAM_SERVICE_URL nor IAM_JWKS_URL is set)")
    if monitoring.pushgateway_url:
        gateway = PushgatewayConfig(
            url=monitoring.pushgateway_url,
            job=monitoring.pushgateway_job,
            grouping_labels=monitoring.pushgateway_labels,
        )
        documents.append((gateway, "PROMETHEUS_PUSHGATEWAY_URL"))
    else:
        skipped.append("Pushgateway (PROMETHEUS_PUSHGATEWAY_URL is not set)")
    if _is_set("OMS_AUDIT_DLQ_DIR", "DLQ_ALERT_THRESHOLD", "DLQ_AGE_THRESHOLD_SECONDS"):
        queue = DlqConfig(
            directory=str(dlq.dlq_dir),
            alert_threshold=monitoring.dlq_alert_threshold,
            age_threshold_seconds=monitoring.dlq_age_threshold_seconds,
            max_attempts=dlq.max_attempts,
            batch_size=dlq.batch_size,
        )
        documents.append((queue, "OMS_AUDIT_DLQ_DIR"))
    else:
        skipped.append("DLQ (OMS_AUDIT_DLQ_DIR is not set)")
    if monitoring.dlq_alert_webhook is not None:
        documents.append((webhook_from_url(monitoring.dlq_alert_webhook), "DLQ_ALERT_WEBHOOK"))
    else:
        skipped.append("alert webhook (DLQ_ALERT_WEBHOOK is not set)")

    existing = [type(block).get_block_type_slug() for block, _ in documents if load_block(type(block), env)]
    if existing and not overwrite:
        err_console.print(
            f"[red]error:[/red] block documents named '{env}' already exist ({', '.join(existing)}); "
            "pass --overwrite to replace them"
        )
        raise typer.Exit(EXIT_USAGE)
    for block, source in documents:
        try:
            block.save(env, overwrite=True)
        except Exception as exc:  # the API refused or is unreachable: say which document, never its values
            err_console.print(
                f"[red]error:[/red] could not save {type(block).get_block_type_slug()}/{env}: {type(exc).__name__}"
                " (is PREFECT_API_URL pointing at the Prefect server?)"
            )
            raise typer.Exit(EXIT_FAILED) from None
        console.print(f"created {type(block).get_block_type_slug()}/{env} from {source}")
    for reason in skipped:
        console.print(f"[dim]skipped {reason}[/dim]")
    forget_blocks()


@blocks_app.command()
def show(
    env: EnvOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the settings as JSON.")] = False,
) -> None:
    """Show every setting ENV resolves to and where it comes from (block, environment, default); secrets
    are never shown."""
    from blocks.environment import setting_sources

    try:
        rows = setting_sources(env, SHOWN_SETTINGS)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        console.print_json(json.dumps([row.__dict__ for row in rows]))
        return
    table = Table(title=f"Configuration of --env {env}")
    for column in ("group", "setting", "value", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.group, row.name, row.value, row.source)
    console.print(table)
