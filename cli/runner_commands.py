"""``oms-audit runner status|stop``: the warm runners of this ``PREFECT_HOME`` (see :mod:`cli.runner`)."""

from __future__ import annotations

import os
import signal
import time

import typer

from . import local_state
from .render import console
from .runner_client import runner_dir

runner_app = typer.Typer(help="The warm runners that serve commands of this PREFECT_HOME.", no_args_is_help=True)


def _runners() -> list[tuple[int, bool]]:
    """(pid, ready) of every live runner, from their state files."""
    folder = runner_dir()
    found = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        state = local_state.read_state(path) or {}
        pid = state.get("pid")
        if isinstance(pid, int) and local_state.process_alive(pid):
            found.append((pid, bool(state.get("ready"))))
    return found


@runner_app.command()
def status() -> None:
    """List the warm runners (pid, ready or still importing)."""
    runners = _runners()
    for pid, ready in runners:
        console.print(f"runner {pid}: {'ready' if ready else 'starting'}")
    if not runners:
        console.print("No warm runner.")


@runner_app.command()
def stop() -> None:
    """Stop every warm runner (the commands they run finish first; so does this one, if a runner serves it)."""
    runners = [pid for pid, _ready in _runners()]
    for pid in runners:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(local_state.process_alive(p) and p != os.getppid() for p in runners):
        time.sleep(0.1)
    console.print(f"Stopped {len(runners)} warm runner(s)." if runners else "No warm runner.")
