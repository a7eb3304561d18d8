"""The history of migration runs, one ``MigrationRun`` document per run (as Flyway keeps its history table).

A run is written when it starts and updated as it goes: per-type progress (``type_states``), status, the
head commit after, the report path. Updates of a stored run are read-modify-write with TerminusDB's
optimistic concurrency, so two tasks of one run updating different types never lose each other's change.

Runs live on the metadata database's ``migrations`` branch (see :mod:`core.metadata_db` for why).
Every function takes a gateway opened on the metadata database (:func:`core.metadata_db.metadata_gateway`).
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, field_validator

from core.errors import DataVersionConflict, DocumentNotFound
from core.metadata_db import (
    METADATA_AUTHOR,
    MIGRATION_RUN,
    MIGRATIONS_BRANCH,
    format_datetime,
    lexical_id,
    parse_datetime,
)
from core.terminus import TerminusGateway

logger = logging.getLogger(__name__)

RunMode = Literal["dry_run", "execute", "rollback"]
RunStatus = Literal[
    "planned", "awaiting_approval", "running", "succeeded", "failed", "rejected", "timed_out", "stopped"
]
TypeState = Literal["pending", "applying", "applied", "failed"]

#: how often an update refused for a moved data version is re-read and tried again
MAX_ATTEMPTS = 8

_DATETIME_FIELDS = ("started_at", "finished_at")


class MigrationRunRecord(BaseModel):
    """One migration run as stored in the metadata database."""

    run_id: str
    database: str
    branch: str
    mode: RunMode
    status: RunStatus
    triggered_by: str
    approved_by: str | None = None
    approval_comment: str | None = None
    fingerprint: str
    head_commit_before: str | None = None
    head_commit_after: str | None = None
    type_states: dict[str, TypeState] = {}
    report_path: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None

    @field_validator("run_id", "database", "branch")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string")
        return value

    @field_validator("started_at", "finished_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return parse_datetime(format_datetime(value)) if value is not None else None

    @property
    def document_id(self) -> str:
        return run_document_id(self.run_id)

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"@id": self.document_id, "@type": MIGRATION_RUN}
        for name, value in self.model_dump(exclude={"type_states"}).items():
            if value is None:
                continue  # TerminusDB omits a missing Optional
            doc[name] = format_datetime(value) if name in _DATETIME_FIELDS else value
        doc["type_states"] = json.dumps(self.type_states, sort_keys=True)
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> MigrationRunRecord:
        fields = {k: v for k, v in doc.items() if not k.startswith("@")}
        fields["type_states"] = json.loads(fields.get("type_states") or "{}")
        return cls.model_validate(fields)


def run_document_id(run_id: str) -> str:
    return lexical_id(MIGRATION_RUN, run_id)


def record_run(gateway: TerminusGateway, run: MigrationRunRecord) -> None:
    """Store the run as given, creating or replacing its document."""
    gateway.replace_documents(
        [run.to_document()],
        author=METADATA_AUTHOR,
        message=f"Record migration run {run.run_id} ({run.mode}, {run.status})",
        create=True,
        branch=MIGRATIONS_BRANCH,
    )


def get_run(gateway: TerminusGateway, run_id: str) -> MigrationRunRecord | None:
    """The stored run, or None if there is no run with that id."""
    try:
        doc, _ = gateway.get_document(run_document_id(run_id), branch=MIGRATIONS_BRANCH)
    except DocumentNotFound:
        return None
    return MigrationRunRecord.from_document(doc)


def list_runs(gateway: TerminusGateway, database: str | None = None, limit: int = 20) -> list[MigrationRunRecord]:
    """The latest ``limit`` runs, newest first (by start time), optionally only those on ``database``."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    runs = (_parse_or_skip(doc) for doc in gateway.iter_documents(doc_type=MIGRATION_RUN, branch=MIGRATIONS_BRANCH))
    wanted = (run for run in runs if run is not None and (database is None or run.database == database))
    return heapq.nlargest(limit, wanted, key=lambda run: (run.started_at, run.run_id))


def update_type_state(gateway: TerminusGateway, run_id: str, type_name: str, state: TypeState) -> MigrationRunRecord:
    """Set one type's progress in a stored run; returns the run as now stored."""
    return _modify_run(
        gateway,
        run_id,
        lambda run: {"type_states": {**run.type_states, type_name: state}},
        f"Run {run_id}: {type_name} {state}",
    )


def update_run(gateway: TerminusGateway, run_id: str, /, **changes: Any) -> MigrationRunRecord:
    """Change fields of a stored run (e.g. ``status="succeeded", finished_at=...``); returns it as stored."""
    unknown = set(changes) - (set(MigrationRunRecord.model_fields) - {"run_id"})
    if unknown:
        raise ValueError(f"Cannot update {', '.join(sorted(unknown))} of a migration run")
    summary = ", ".join(f"{k}={v}" for k, v in changes.items() if k in ("status", "mode"))
    return _modify_run(gateway, run_id, lambda run: changes, f"Run {run_id} updated {summary}".rstrip())


def _modify_run(
    gateway: TerminusGateway,
    run_id: str,
    change: Callable[[MigrationRunRecord], dict[str, Any]],
    message: str,
) -> MigrationRunRecord:
    last_conflict: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        # a missing run raises DocumentNotFound naming its id
        doc, version = gateway.get_document(run_document_id(run_id), branch=MIGRATIONS_BRANCH)
        current = MigrationRunRecord.from_document(doc)
        updated = MigrationRunRecord.model_validate({**current.model_dump(), **change(current)})
        try:
            gateway.replace_documents(
                [updated.to_document()],
                author=METADATA_AUTHOR,
                message=message,
                data_version=version,
                branch=MIGRATIONS_BRANCH,
            )
        except DataVersionConflict as exc:
            last_conflict = exc
            logger.debug("Run %s changed while updating it; reading again (attempt %d)", run_id, attempt + 1)
            time.sleep(random.uniform(0, 0.02 * 2 ** min(attempt, 4)))
            continue
        return updated
    assert last_conflict is not None
    raise last_conflict


def _parse_or_skip(doc: dict[str, Any]) -> MigrationRunRecord | None:
    try:
        return MigrationRunRecord.from_document(doc)
    except (ValidationError, ValueError, KeyError) as exc:
        logger.warning("Skipping unreadable migration run document %s: %s", doc.get("@id"), exc)
        return None
