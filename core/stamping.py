"""The one stamping rule: who created and who last changed a document, filled by oms-audit alone.

- create: ``_created_*`` and ``_updated_*`` from the author and one UTC instant;
- update: ``_created_*`` copied from the stored document (absent stays absent: a document written before
  the migration has no known creator), ``_updated_*`` set;
- audit fields sent by a client are always dropped first, so nobody can forge them.

The write path stamps with the verified principal; the migration's validation stamps its sample write
with the same functions, so both follow this rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from core.audit_fields import AUDIT_FIELDS

__all__ = ["Author", "stamp_create", "stamp_update", "without_audit_fields", "xsd_datetime"]

CREATED_FIELDS = ("_created_by", "_created_by_username", "_created_at")
UPDATED_FIELDS = ("_updated_by", "_updated_by_username", "_updated_at")


class Author(Protocol):
    """Anything with an id and a username; a verified ``core.identity.Principal`` in the write path."""

    @property
    def id(self) -> str: ...

    @property
    def username(self) -> str | None: ...


def xsd_datetime(at: datetime) -> str:
    """An ``xsd:dateTime`` in UTC with millisecond precision (naive values are taken to be UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def without_audit_fields(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` without any audit field (what a client sent for them is never kept)."""
    return {key: value for key, value in document.items() if key not in AUDIT_FIELDS}


def _stamp(prefix: str, author: Author, at: datetime) -> dict[str, str]:
    values = {f"_{prefix}_by": author.id, f"_{prefix}_at": xsd_datetime(at)}
    if author.username:
        values[f"_{prefix}_by_username"] = author.username
    return values


def stamp_create(document: Mapping[str, Any], author: Author, at: datetime) -> dict[str, Any]:
    """The document to insert: client audit fields dropped, created = updated = ``author`` at ``at``."""
    return {**without_audit_fields(document), **_stamp("created", author, at), **_stamp("updated", author, at)}


def stamp_update(
    document: Mapping[str, Any], stored: Mapping[str, Any], author: Author, at: datetime
) -> dict[str, Any]:
    """The document to write over ``stored``: ``_created_*`` kept from ``stored``, ``_updated_*`` set."""
    created = {key: stored[key] for key in CREATED_FIELDS if key in stored}
    return {**without_audit_fields(document), **created, **_stamp("updated", author, at)}
