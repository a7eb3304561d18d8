"""The rollback's write freeze as a flow step: one ``with`` around the schema change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger

from blocks.environment import resolve_terminus
from core.settings import ServiceSettings, load_settings
from core.write_freeze import FreezeState, frozen_writes
from tasks.terminus_target import Target


@contextmanager
def writes_frozen(target: Target, *, reason: str, set_by: str) -> Iterator[FreezeState]:
    """Freeze writes to the target's database for the body; lifted when it ends, whether it failed or not.

    Waits two service poll intervals after setting the flag, so every running service has seen it.
    """
    settings = resolve_terminus(target.env).settings.model_copy(update={"database": target.database})
    settle = 2 * load_settings(ServiceSettings).freeze_poll_seconds
    logger = get_run_logger()
    with frozen_writes(settings, reason=reason, set_by=set_by, settle_seconds=settle) as state:
        logger.info("Writes to %s frozen: %s", target.database, reason)
        try:
            yield state
        finally:
            logger.info("Write freeze on %s lifted", target.database)
