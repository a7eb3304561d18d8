"""infer_migration: weakening schema writes become recorded migrations (spec §3.7)."""

from __future__ import annotations

from typing import Any

from sandbox.migration import infer_migration
from sandbox.schema import DEFAULT_CONTEXT, prepare_schema_documents


def _schema(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"@context": DEFAULT_CONTEXT, **{d["@id"]: d for d in prepare_schema_documents(list(docs))}}


OLD = _schema(
    {"@type": "Class", "@id": "P", "a": "xsd:string", "@abstract": []},
    {"@type": "Enum", "@id": "E", "@value": ["x"]},
)


def test_weakenings_become_operations() -> None:
    new = _schema(
        {
            "@type": "Class",
            "@id": "P",
            "a": {"@type": "Optional", "@class": "xsd:string"},
            "b": {"@type": "Set", "@class": "xsd:string"},
        },
        {"@type": "Enum", "@id": "E", "@value": ["x", "y"]},
        {"@type": "Class", "@id": "Q"},
    )
    assert infer_migration(OLD, new) == [
        {"@type": "NotAbstract", "class": "P"},
        {
            "@type": "UpcastClassProperty",
            "class": "P",
            "property": "a",
            "type": {"@type": "Optional", "@class": "xsd:string"},
        },
        {
            "@type": "CreateClassProperty",
            "class": "P",
            "property": "b",
            "type": {"@type": "Set", "@class": "xsd:string"},
        },
        {"@type": "ExpandEnum", "enum": "E", "values": ["y"]},
        {"@type": "CreateClass", "class_document": {"@id": "Q", "@type": "Class"}},
    ]
    assert infer_migration(OLD, OLD) == []


def test_non_weakenings_give_none() -> None:
    assert infer_migration(OLD, _schema({"@type": "Enum", "@id": "E", "@value": ["x"]})) is None
    required = _schema(
        {"@type": "Class", "@id": "P", "a": "xsd:string", "@abstract": [], "c": "xsd:string"},
        {"@type": "Enum", "@id": "E", "@value": ["x"]},
    )
    assert infer_migration(OLD, required) is None
    narrowed = _schema(
        {"@type": "Class", "@id": "P", "a": "xsd:string", "@abstract": []}, {"@type": "Enum", "@id": "E", "@value": []}
    )
    assert infer_migration(OLD, narrowed) is None
