"""The write freeze: the guide's rollback step 1 ("Stop Application - prevent new writes") made real.

While a ``WriteFreeze`` document for the ontology database exists in the metadata database (its ``main``
branch), the service answers every write with 503 and the freeze's reason; reads go on. The rollback flow
holds the freeze around its schema change (:func:`frozen_writes`, cleared also when the change fails);
operators use ``oms-audit freeze on|off|status``.

Services re-read the flag every ``OMS_AUDIT_FREEZE_POLL_SECONDS``, so :func:`frozen_writes` waits that long
(twice, to be safe) after setting it before it lets the schema change begin: a write that started before
the freeze was seen has finished by then.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from core.errors import DatabaseNotFound, DocumentNotFound
from core.metadata_db import (
    METADATA_AUTHOR,
    METADATA_BRANCH,
    WRITE_FREEZE,
    ensure_metadata_db,
    lexical_id,
    metadata_gateway,
)
from core.settings import TerminusSettings
from core.terminus_async import AsyncDocumentClient
from core.timestamps import format_utc, parse_utc, utc_now

__all__ = [
    "FreezeState",
    "clear_write_freeze",
    "freeze_id",
    "frozen_writes",
    "read_write_freeze",
    "read_write_freeze_async",
    "set_write_freeze",
]


@dataclass(frozen=True)
class FreezeState:
    database: str
    reason: str
    set_by: str
    set_at: datetime


def freeze_id(database: str) -> str:
    return lexical_id(WRITE_FREEZE, database)


def _state(document: dict[str, object]) -> FreezeState:
    return FreezeState(
        database=str(document.get("database", "")),
        reason=str(document.get("reason", "")),
        set_by=str(document.get("set_by", "")),
        set_at=parse_utc(str(document.get("set_at"))),
    )


def set_write_freeze(settings: TerminusSettings, *, reason: str, set_by: str) -> FreezeState:
    """Freeze writes to ``settings.database`` (replacing any earlier freeze's reason)."""
    state = FreezeState(database=settings.database, reason=reason, set_by=set_by, set_at=utc_now())
    with metadata_gateway(settings) as meta:
        ensure_metadata_db(meta, settings)
        meta.replace_documents(
            [
                {
                    "@type": WRITE_FREEZE,
                    "@id": freeze_id(state.database),
                    "database": state.database,
                    "reason": reason,
                    "set_by": set_by,
                    "set_at": format_utc(state.set_at),
                }
            ],
            author=METADATA_AUTHOR,
            message=f"Freeze writes to {state.database}: {reason}",
            create=True,
            branch=METADATA_BRANCH,
        )
    return state


def clear_write_freeze(settings: TerminusSettings) -> bool:
    """Lift the freeze; False when there was none."""
    with metadata_gateway(settings) as meta:
        try:
            meta.delete_documents(
                [freeze_id(settings.database)],
                author=METADATA_AUTHOR,
                message=f"Lift the write freeze on {settings.database}",
                branch=METADATA_BRANCH,
            )
        except (DocumentNotFound, DatabaseNotFound):
            return False
    return True


def read_write_freeze(settings: TerminusSettings) -> FreezeState | None:
    with metadata_gateway(settings) as meta:
        try:
            document, _ = meta.get_document(freeze_id(settings.database), branch=METADATA_BRANCH)
        except (DocumentNotFound, DatabaseNotFound):
            return None
    return _state(document)


async def read_write_freeze_async(client: AsyncDocumentClient, settings: TerminusSettings) -> FreezeState | None:
    """The service's read of the flag (through its concurrent client)."""
    try:
        document = await client.get(
            freeze_id(settings.database), database=settings.meta_database, branch=METADATA_BRANCH
        )
    except (DocumentNotFound, DatabaseNotFound):
        return None
    return _state(document)


@contextlib.contextmanager
def frozen_writes(
    settings: TerminusSettings, *, reason: str, set_by: str, settle_seconds: float = 1.0
) -> Iterator[FreezeState]:
    """Hold the write freeze for the body (cleared on success and on failure alike)."""
    state = set_write_freeze(settings, reason=reason, set_by=set_by)
    try:
        time.sleep(settle_seconds)
        yield state
    finally:
        clear_write_freeze(settings)
