"""Small readings of a schema graph in the form TerminusDB returns it (``@context`` first, one doc per class)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

SchemaDocuments = list[dict[str, Any]]


def own_properties(schema: SchemaDocuments) -> dict[str, set[str]]:
    """Properties each class declares itself (what CreateClassProperty refuses to add again)."""
    return {
        str(doc["@id"]): {key for key in doc if not key.startswith("@")}
        for doc in schema
        if isinstance(doc.get("@id"), str)
    }


def without_fields(schema: SchemaDocuments, removals: Mapping[str, Iterable[str]]) -> SchemaDocuments:
    """The schema as it should read once ``removals`` (class -> properties) are deleted."""
    result = []
    for doc in schema:
        gone = set(removals.get(str(doc.get("@id")), ()))
        result.append({key: value for key, value in doc.items() if key not in gone} if gone else doc)
    return result


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def schema_differences(expected: SchemaDocuments, actual: SchemaDocuments) -> list[str]:
    """Human-readable differences between two schema graphs, ignoring document order (empty = equal)."""

    def by_id(documents: SchemaDocuments) -> dict[str, dict[str, Any]]:
        return {str(doc.get("@id", doc.get("@type"))): doc for doc in documents}

    want, got = by_id(expected), by_id(actual)
    differences = [f"{name}: missing" for name in sorted(want.keys() - got.keys())]
    differences += [f"{name}: unexpected" for name in sorted(got.keys() - want.keys())]
    for name in sorted(want.keys() & got.keys()):
        if _canonical(want[name]) != _canonical(got[name]):
            extra = sorted(got[name].keys() - want[name].keys())
            lost = sorted(want[name].keys() - got[name].keys())
            detail = ", ".join([*(f"+{k}" for k in extra), *(f"-{k}" for k in lost)]) or "changed values"
            differences.append(f"{name}: {detail}")
    return differences
