"""What a task needs to reach TerminusDB, without carrying credentials through Prefect.

Task parameters are recorded by Prefect and hashed into cache keys, so they hold only the environment's
name and the database/branch; each task resolves the settings itself (cached per process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from pydantic import BaseModel

from blocks.environment import resolve_terminus
from core.errors import is_transient
from core.settings import TerminusSettings
from core.terminus import TerminusGateway


class Target(BaseModel, frozen=True):
    """A database and branch in the TerminusDB of an environment."""

    env: str
    database: str
    branch: str

    def describe(self) -> str:
        return f"{self.database}@{self.branch} ({self.env})"


def resolve_target(env: str, database: str | None = None, branch: str | None = None) -> Target:
    """Fill database and branch from the environment's configuration where the caller left them out."""
    settings = resolve_terminus(env).settings
    return Target(env=env, database=database or settings.database, branch=branch or settings.branch)


@contextmanager
def open_gateway(target: Target, *, database: str | None = None) -> Iterator[TerminusGateway]:
    """A gateway on the target's database (or another database of the same server, e.g. the metadata one).

    Shared by every task of this process that uses the same settings, database and branch: a new gateway
    costs a TLS setup and the official client's connect round trips, per task. Gateways are thread-safe
    and reconnect by themselves, so the shared one stays open for the process's life.
    """
    settings = resolve_terminus(target.env).settings
    yield _shared_gateway(settings, database or target.database, target.branch)


@lru_cache(maxsize=64)
def _shared_gateway(settings: TerminusSettings, database: str, branch: str) -> TerminusGateway:
    return TerminusGateway(settings, database=database, branch=branch)


def configuration_of(env: str) -> tuple[str, str]:
    """(server URL without credentials, where the settings came from), for reports: which server was meant."""
    resolved = resolve_terminus(env)
    with TerminusGateway(resolved.settings) as gateway:  # builds the public URL; opens no connection
        return gateway.url, resolved.source


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect ``retry_condition_fn``: retry connection trouble, timeouts, 5xx and lost races, never a 4xx."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by Prefect
        return is_transient(exc)
    return False


TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [1, 2, 4],
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_if_transient,
}
"""Retry policy of every task that talks to TerminusDB: backoff, and only for transient failures."""
