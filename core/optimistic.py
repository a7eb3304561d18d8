"""The one retry loop (:func:`retry_call`), and on it the read-decide-write loop of TerminusDB's optimistic
concurrency for every metadata record (:func:`retry_on_conflict`).

A change is read together with the branch's data version and written passing that version; if anybody
committed in between, the write is refused (:class:`~core.errors.DataVersionConflict`) and the whole step
runs again from the read, a few times, after a short random pause so racing writers do not collide again in
lock step. The step decides afresh each time: what it read may make the write unnecessary or wrong.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from core.errors import DataVersionConflict

logger = logging.getLogger(__name__)

#: how often a step refused for a moved data version is read again and tried again
MAX_ATTEMPTS = 8

T = TypeVar("T")


def retry_on_conflict(
    step: Callable[[], T],
    *,
    what: str,
    conflicts: tuple[type[Exception], ...] = (DataVersionConflict,),
    attempts: int = MAX_ATTEMPTS,
) -> T:
    """Run ``step`` (read, decide, write) until it is not refused by one of ``conflicts``; re-raise the last."""

    def lost_race(attempt: int, exc: Exception) -> None:
        logger.debug("%s lost a race (%s); reading again (attempt %d)", what, type(exc).__name__, attempt)

    return retry_call(
        step,
        retry_on=conflicts,
        attempts=attempts,
        delay=lambda attempt: random.uniform(0, 0.02 * 2 ** min(attempt, 4)),
        on_retry=lost_race,
    )


def retry_call(
    step: Callable[[], T],
    *,
    retry_on: tuple[type[Exception], ...],
    attempts: int,
    delay: Callable[[int], float],
    on_retry: Callable[[int, Exception], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """The one retry loop: ``step`` again after ``delay(attempt)`` while it raises ``retry_on``; the last is raised."""
    for attempt in range(attempts):
        try:
            return step()
        except retry_on as exc:
            if attempt + 1 >= attempts:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            sleep(delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover
