"""How a finished run maps to the CLI's exit codes, and where its report is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from core.errors import (
    ApprovalRejected,
    AuthenticationFailed,
    BranchNotFound,
    ConfigError,
    DatabaseNotFound,
    LeaseHeld,
    PermissionDenied,
    PlanConflict,
    RollbackRefused,
    SchemaDrift,
    StaleApproval,
    UnknownTypes,
)

if TYPE_CHECKING:
    from prefect.states import State

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3

STOPPED = (SchemaDrift, LeaseHeld, StaleApproval, PlanConflict, ApprovalRejected, RollbackRefused)
# Wrong names, wrong credentials, missing rights: the command or its configuration must change, not the data.
USAGE = (ConfigError, UnknownTypes, AuthenticationFailed, PermissionDenied, DatabaseNotFound, BranchNotFound)


def failure_of(state: State[Any]) -> BaseException | None:
    """The exception a failed run raised (kept in memory for runs made in this process)."""
    try:
        value = state.result(raise_on_failure=False)
    except Exception as exc:  # result not retrievable: report the retrieval problem itself
        return exc
    return value if isinstance(value, BaseException) else None


def exit_code(state: State[Any]) -> int:
    if state.is_completed():
        return EXIT_OK
    if state.is_cancelled():
        return EXIT_STOPPED  # rejected by the approver
    error = failure_of(state)
    if isinstance(error, USAGE):
        return EXIT_USAGE
    if isinstance(error, STOPPED):
        return EXIT_STOPPED
    return EXIT_FAILED


def find_report(directory: Path, run_id: UUID | None, prefix: str) -> Path | None:
    """The report the run wrote (reports name the run that owns them)."""
    if run_id is None or not directory.is_dir():
        return None
    for path in sorted(directory.glob(f"{prefix}*.json"), reverse=True):
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("run_id") == str(run_id):
                return path
        except (OSError, json.JSONDecodeError):
            continue
    return None
