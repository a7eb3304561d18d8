"""Small builders for schema graphs in the form TerminusDB's GET ?graph_type=schema returns."""

from __future__ import annotations

from typing import Any

from core.audit_fields import AUDIT_FIELDS
from core.schema_analysis import SchemaAnalysis, analyze_schema

CONTEXT: dict[str, Any] = {
    "@type": "@context",
    "@base": "terminusdb:///data/",
    "@schema": "terminusdb:///schema#",
}


def cls(
    class_id: str,
    /,
    *parents: str,
    abstract: bool = False,
    subdocument: bool = False,
    **properties: Any,
) -> dict[str, Any]:
    """A Class document in GET form (a single parent as a plain string, several as a list)."""
    doc: dict[str, Any] = {"@type": "Class", "@id": class_id}
    if len(parents) == 1:
        doc["@inherits"] = parents[0]
    elif parents:
        doc["@inherits"] = list(parents)
    if abstract:
        doc["@abstract"] = []
    if subdocument:
        doc["@subdocument"] = []
        doc["@key"] = {"@type": "Random"}
    doc.update(properties)
    return doc


def audit_props(*names: str) -> dict[str, Any]:
    """Audit-field declarations with the right ranges (all six when no names are given)."""
    return {name: {"@type": "Optional", "@class": AUDIT_FIELDS[name]} for name in names or AUDIT_FIELDS}


def analyze(
    *docs: dict[str, Any], counts: dict[str, int] | None = None, head: str = "c0", **options: Any
) -> SchemaAnalysis:
    return analyze_schema([CONTEXT, *docs], counts or {}, head_commit=head, **options)
