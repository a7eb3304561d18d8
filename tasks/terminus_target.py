"""What a task needs to reach TerminusDB, without carrying credentials through Prefect.

A run resolves its environment once (:func:`resolve_target`: block or environment variables, validated) into
a :class:`Target`: the environment's name, the server's public URL, where the settings came from, the
database and branch. Task parameters are recorded by Prefect and hashed into cache keys, so the target
carries no secret; the settings it was resolved from stay in this process, keyed by the target, and every
task's gateway uses them (:func:`target_settings`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from pydantic import BaseModel

from blocks.environment import resolve_terminus
from core.errors import OmsAuditError, is_transient
from core.retrying import JITTER, TRANSIENT_DELAYS, retries_ran_out, worth_another_attempt
from core.settings import TerminusSettings, check_target_names
from core.terminus import TerminusGateway, public_url


class Target(BaseModel, frozen=True):
    """A database and branch in the TerminusDB of an environment (no credentials: see the module)."""

    env: str
    database: str
    branch: str
    url: str = ""
    """The server's URL, without credentials."""
    config_source: str = ""
    """Where the settings came from: ``block <slug>/<env>``, ``environment`` or ``local defaults``."""

    def describe(self) -> str:
        return f"{self.database}@{self.branch} ({self.env})"


_RESOLVED: dict[Target, TerminusSettings] = {}


def resolve_target(env: str, database: str | None = None, branch: str | None = None) -> Target:
    """Resolve the environment once for the run: its settings, database and branch (the configured ones
    where the caller left them out). Raises ConfigError for an unknown environment, an empty name or the
    metadata database."""
    resolved = resolve_terminus(env)
    chosen_database, chosen_branch = check_target_names(resolved.settings, database, branch)
    target = Target(
        env=env,
        database=chosen_database,
        branch=chosen_branch,
        url=public_url(resolved.settings.url),
        config_source=resolved.source,
    )
    _RESOLVED[target] = resolved.settings
    return target


def target_settings(target: Target) -> TerminusSettings:
    """The settings the target was resolved from (resolved again only by a process that did not resolve it)."""
    settings = _RESOLVED.get(target)
    if settings is None:
        settings = _RESOLVED[target] = resolve_terminus(target.env).settings
    return settings


@contextmanager
def open_gateway(target: Target, *, database: str | None = None) -> Iterator[TerminusGateway]:
    """A gateway on the target's database (or another database of the same server, e.g. the metadata one).

    Shared by every task of this process that uses the same settings, database and branch: a new gateway
    costs a TLS setup and the official client's connect round trips, per task. Gateways are thread-safe
    and reconnect by themselves, so the shared one stays open for the process's life.
    """
    yield _shared_gateway(target_settings(target), database or target.database, target.branch)


@lru_cache(maxsize=64)
def _shared_gateway(settings: TerminusSettings, database: str, branch: str) -> TerminusGateway:
    return TerminusGateway(settings, database=database, branch=branch)


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry connection trouble, timeouts, 5xx and lost races, never a 4xx
    (core.retrying decides, as it does for calls outside tasks)."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by Prefect
        return worth_another_attempt(exc, task_run.run_count)
    return False


def say_where_retries_ran_out(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> None:
    """``on_failure`` hook: a transient error that outlived its retries names the step, the database and the
    attempts made, and says that a re-run resumes (the error keeps its type and category)."""
    exc = state.result(raise_on_failure=False)
    if not isinstance(exc, OmsAuditError) or not is_transient(exc):
        return
    context = TaskRunContext.get()
    target = context.parameters.get("target") if context is not None else None
    where = f"the target database '{target.database}'" if isinstance(target, Target) else "TerminusDB"
    started = task_run.start_time or task_run.expected_start_time
    waited = (datetime.now(UTC) - started).total_seconds() if started is not None else 0.0
    retries_ran_out(exc, step=f"Step {task_run.name}", where=where, attempts=task_run.run_count, waited=waited)


TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": len(TRANSIENT_DELAYS),
    "retry_delay_seconds": list(TRANSIENT_DELAYS),
    "retry_jitter_factor": JITTER,
    "retry_condition_fn": retry_if_transient,
    "on_failure": [say_where_retries_ran_out],
}
"""Retry policy of every task that talks to TerminusDB: backoff, and only for transient failures."""
