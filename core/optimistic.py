"""The one read-decide-write loop of TerminusDB's optimistic concurrency, for every metadata record.

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
    for attempt in range(attempts):
        try:
            return step()
        except conflicts as exc:
            if attempt == attempts - 1:
                raise
            logger.debug("%s lost a race (%s); reading again (attempt %d)", what, type(exc).__name__, attempt + 1)
            time.sleep(random.uniform(0, 0.02 * 2 ** min(attempt, 4)))
    raise AssertionError("unreachable")  # pragma: no cover
