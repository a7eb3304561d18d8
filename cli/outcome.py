"""How a finished run maps to the CLI's exit codes, and where its report is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from core.errors import ErrorCategory, category_of

if TYPE_CHECKING:
    from prefect.states import State

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3

#: the exit code of each error category (core.errors classifies; nothing here lists error types)
EXIT_CODES: dict[ErrorCategory, int] = {
    "transient": EXIT_FAILED,  # retries ran out
    "failed": EXIT_FAILED,
    "usage": EXIT_USAGE,
    "stopped": EXIT_STOPPED,
}


def exit_code_of(error: BaseException) -> int:
    return EXIT_CODES[category_of(error)]


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
    return EXIT_FAILED if error is None else exit_code_of(error)


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
