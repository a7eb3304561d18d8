"""``oms-audit approve RUN_ID``: answer a paused run's approval from a shell, optionally with a verified token.

The token (``--token-file`` or ``OMS_AUDIT_APPROVER_TOKEN``) travels in the run input to the flow, which
verifies it and replaces it in the stored input by its verdict; it is never printed. The command waits a
little to say whether the run took the answer or refused it (and why).
"""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer

from .outcome import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE
from .render import console, err_console

TOKEN_VARIABLE = "OMS_AUDIT_APPROVER_TOKEN"


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            err_console.print(f"[red]error:[/red] cannot read --token-file {token_file}: {exc.strerror or exc}")
            raise typer.Exit(EXIT_USAGE) from None
    return os.environ.get(TOKEN_VARIABLE, "").strip()


def approve(
    run_id: Annotated[str, typer.Argument(help="The paused flow run's id (shown in the UI and the run's logs).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject the plan instead (nothing is changed).")] = False,
    comment: Annotated[str, typer.Option("--comment", help="Why; shown in the run's final state.")] = "",
    approver: Annotated[str | None, typer.Option("--approver", help="Your name (default: the OS user).")] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help=f"File holding your IAM JWT (else ${TOKEN_VARIABLE}).")
    ] = None,
    wait_seconds: Annotated[float, typer.Option("--wait", help="How long to wait for the run's verdict.")] = 60.0,
) -> None:
    """Approve (or --reject) a paused audit-fields run; with a token the approval is verified."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.input import keyset_from_paused_state

    from tasks.approval import answer_paused_run

    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        err_console.print(
            f"[red]error:[/red] {run_id!r} is not a flow run id (a UUID such as 0f6e…); copy it from the UI"
        )
        raise typer.Exit(EXIT_USAGE) from None
    token = _token(token_file)
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        err_console.print(f"[red]error:[/red] no flow run {run_id} on this Prefect API (check PREFECT_API_URL)")
        raise typer.Exit(EXIT_USAGE) from None
    if run.state is None or not run.state.is_paused():
        err_console.print(
            f"[red]error:[/red] run {run.name} is {run.state.name if run.state else 'unknown'}, not paused"
        )
        raise typer.Exit(EXIT_USAGE)
    keyset = keyset_from_paused_state(run.state)
    answer = {
        "decision": "reject" if reject else "approve",
        "approver": approver or getpass.getuser(),
        "comment": comment,
        "approval_token": token,
        "via": "oms-audit approve",
    }
    try:
        answer_paused_run(flow_run_id, keyset, answer)
    except (NotPausedError, FlowPauseTimeout) as exc:
        err_console.print(f"[red]error:[/red] run {run.name} can no longer be answered: {type(exc).__name__}")
        raise typer.Exit(EXIT_FAILED) from None
    except RuntimeError as exc:  # the server refused the input (validation)
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    del token, answer
    raise typer.Exit(_verdict(flow_run_id, keyset["response"], wait_seconds))


def _verdict(flow_run_id: UUID, answered_key: str, wait_seconds: float) -> int:
    """Wait until the run leaves the pause we answered: running or ended (taken), or paused again (refused)."""
    from prefect.client.orchestration import get_client
    from prefect.input import keyset_from_paused_state
    from prefect.input.actions import read_flow_run_input

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
        state = run.state
        if state is not None and state.is_paused():
            keyset = keyset_from_paused_state(state)
            if keyset["response"] != answered_key:
                description = str(read_flow_run_input(keyset["description"], flow_run_id=flow_run_id) or "")
                reason = description.splitlines()[0].removeprefix("> ") if description else "refused"
                err_console.print(f"Run {run.name} refused the answer and keeps waiting: {reason}")
                return EXIT_STOPPED
        elif state is not None:
            console.print(f"Run {run.name} took the answer; it is now {state.name}.")
            return EXIT_OK
        time.sleep(1)
    console.print(f"Answer sent; run {run.name} has not moved yet (see the UI).")
    return EXIT_OK
