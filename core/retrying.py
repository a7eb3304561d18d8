"""The one retry policy for transient failures (core.errors categories), for Prefect tasks and plain calls.

Prefect tasks get it as ``retries``/``retry_delay_seconds`` (tasks.terminus_target); calls made outside a
task (the metadata database: history records, the lease) go through :func:`retry_transient`. Either way a
failure that outlives its retries says where it happened, how long was waited over how many attempts, and
that a re-run resumes: :func:`retries_ran_out` rewrites the error's message (its type and category stay).

A server that accepts and never answers costs a whole timeout per attempt, so timeouts get a bounded
share of the attempts (:data:`TIMEOUT_ATTEMPTS`): the whole wait stays a small multiple of the timeout.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from core.errors import OmsAuditError, TerminusTimeout, is_transient

logger = logging.getLogger(__name__)

#: pauses between attempts: 4 attempts in all
TRANSIENT_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
JITTER = 0.2
#: attempts at most when the server does not answer in time (each attempt waits a whole timeout)
TIMEOUT_ATTEMPTS = 2
RESUME_HINT = "A re-run resumes where this run stopped."

T = TypeVar("T")


def worth_another_attempt(exc: BaseException, attempts_made: int) -> bool:
    """Whether a call that failed with ``exc`` after ``attempts_made`` attempts should be tried again."""
    if not is_transient(exc) or attempts_made > len(TRANSIENT_DELAYS):
        return False
    return not (isinstance(exc, TerminusTimeout) and attempts_made >= TIMEOUT_ATTEMPTS)


def retry_transient(call: Callable[[], T], *, step: str, where: str) -> T:
    """``call()``, tried again after a pause while it fails transiently; then :func:`retries_ran_out`."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except OmsAuditError as exc:
            if not worth_another_attempt(exc, attempt):
                if is_transient(exc):
                    retries_ran_out(exc, step=step, where=where, attempts=attempt, waited=time.monotonic() - started)
                raise
            delay = TRANSIENT_DELAYS[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            logger.warning("%s on %s failed (%s); attempt %d in %.1f s", step, where, exc, attempt + 1, delay)
            time.sleep(delay)


def retries_ran_out(exc: OmsAuditError, *, step: str, where: str, attempts: int, waited: float) -> None:
    """Say in ``exc``'s message where it failed, that retries ran out after how long, and that a re-run resumes."""
    if getattr(exc, "retries_ran_out", False):
        return  # said once, by the innermost retry
    exc.retries_ran_out = True  # type: ignore[attr-defined]
    exc.args = (
        f"{step} on {where} failed; gave up after {attempts} attempt{'s' if attempts != 1 else ''} "
        f"over {waited:.0f} s (retries ran out). {exc} {RESUME_HINT}",
        *exc.args[1:],
    )
