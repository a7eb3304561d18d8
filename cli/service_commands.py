"""``oms-audit serve`` and ``oms-audit freeze``: the write path's commands."""

from __future__ import annotations

import getpass
import json
from enum import StrEnum
from typing import Annotated

import typer

from core.errors import OmsAuditError
from core.settings import TerminusSettings, load_settings

from .outcome import EXIT_USAGE
from .render import console, err_console


class EventLoop(StrEnum):
    auto = "auto"
    uvloop = "uvloop"
    asyncio = "asyncio"


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn's access log; off: it costs CPU).")
    ] = False,
    env: Annotated[
        str | None, typer.Option("--env", help="Read the block documents of this name first (else env vars only).")
    ] = None,
    loop: Annotated[
        EventLoop, typer.Option("--loop", help="Event loop: auto is uvloop when installed, else asyncio's.")
    ] = EventLoop.auto,
) -> None:
    """Run the HTTP service (settings from TERMINUS_DB_*, IAM_*, OMS_AUDIT_* environment variables)."""
    from service.server import serve as run

    config = None
    if env is not None:
        from blocks.environment import resolve_settings
        from core.settings import AuditSinkSettings, DlqSettings, IamSettings, ServiceSettings
        from service.app import ServiceConfig

        try:
            config = ServiceConfig(
                terminus=resolve_settings(env, TerminusSettings),
                iam=resolve_settings(env, IamSettings),
                service=resolve_settings(env, ServiceSettings),
                dlq=resolve_settings(env, DlqSettings),
                sink_settings=resolve_settings(env, AuditSinkSettings),
            )
        except OmsAuditError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(EXIT_USAGE) from None
    run(host, port, log_level=log_level, access_log=access_log, loop=loop.value, config=config)


class FreezeAction(StrEnum):
    on = "on"
    off = "off"
    status = "status"


def freeze(
    action: Annotated[FreezeAction, typer.Argument(help="on: refuse writes; off: accept them again; status: show.")],
    reason: Annotated[str, typer.Option("--reason", help="Shown to every refused writer.")] = "maintenance",
    database: Annotated[str | None, typer.Option("--database", help="Default: TERMINUS_DB_NAME.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """Freeze or unfreeze writes through the service (reads go on), or show whether they are frozen."""
    from core.write_freeze import clear_write_freeze, read_write_freeze, set_write_freeze

    try:
        settings = load_settings(TerminusSettings)
        if database:
            settings = settings.model_copy(update={"database": database})
        if action is FreezeAction.on:
            set_write_freeze(settings, reason=reason, set_by=getpass.getuser())
        elif action is FreezeAction.off:
            clear_write_freeze(settings)
        state = read_write_freeze(settings)
    except OmsAuditError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_USAGE if isinstance(exc, ValueError) else 1) from None
    if as_json:
        payload = {"database": settings.database, "frozen": state is not None}
        if state is not None:
            payload.update(reason=state.reason, set_by=state.set_by, set_at=state.set_at.isoformat())
        console.print_json(json.dumps(payload))
    elif state is None:
        console.print(f"Writes to {settings.database} are open.")
    else:
        console.print(
            f"Writes to {settings.database} are FROZEN since {state.set_at.isoformat()} by {state.set_by}: "
            f"{state.reason}"
        )
