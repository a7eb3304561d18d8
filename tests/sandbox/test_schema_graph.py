"""Whole-graph schema checks: unknown ranges/parents and the diamond property (spec §3.4)."""

from __future__ import annotations

import pytest

from sandbox.errors import SchemaCheckFailure
from sandbox.schema import (
    DEFAULT_CONTEXT,
    check_schema,
    compile_schema,
    prepare_schema_documents,
    resolve_type_name,
    subclasses,
)


def _schema(*docs: dict) -> dict:
    return {"@context": DEFAULT_CONTEXT, **{d["@id"]: d for d in prepare_schema_documents(list(docs))}}


def _witness(schema: dict) -> dict:
    with pytest.raises(SchemaCheckFailure) as exc:
        check_schema(schema)
    assert len(exc.value.witnesses) == 1
    return exc.value.witnesses[0]


def test_unknown_range_class() -> None:
    schema = _schema({"@type": "Class", "@id": "A", "b": "Missing"})
    assert _witness(schema) == {"@type": "not_a_class_or_base_type", "class": "terminusdb:///schema#Missing"}


def test_unknown_parent() -> None:
    schema = _schema({"@type": "Class", "@id": "A", "@inherits": "Nope"})
    assert _witness(schema)["class"] == "terminusdb:///schema#Nope"


def test_diamond_rule() -> None:
    parent = {"@type": "Class", "@id": "P", "a": {"@type": "Optional", "@class": "xsd:string"}}
    # same range: collapses; child may strengthen Optional -> required
    check_schema(
        _schema(
            parent, {"@type": "Class", "@id": "C", "@inherits": "P", "a": {"@type": "Optional", "@class": "xsd:string"}}
        )
    )
    check_schema(_schema(parent, {"@type": "Class", "@id": "C", "@inherits": "P", "a": "xsd:string"}))
    # weakening a required parent property in the child, or an incompatible type, is a violation
    required = {"@type": "Class", "@id": "P", "a": "xsd:string"}
    w = _witness(
        _schema(
            required,
            {"@type": "Class", "@id": "C", "@inherits": "P", "a": {"@type": "Optional", "@class": "xsd:string"}},
        )
    )
    assert w == {
        "@type": "violation_of_diamond_property",
        "class": "terminusdb:///schema#C",
        "predicate": "terminusdb:///schema#a",
    }
    assert _witness(_schema(required, {"@type": "Class", "@id": "C", "@inherits": "P", "a": "xsd:integer"}))[
        "@type"
    ] == ("violation_of_diamond_property")


def test_two_parents_stronger_wins() -> None:
    schema = _schema(
        {"@type": "Class", "@id": "A", "x": {"@type": "Set", "@class": "xsd:string"}},
        {"@type": "Class", "@id": "B", "x": "xsd:string"},
        {"@type": "Class", "@id": "C", "@inherits": ["A", "B"]},
    )
    check_schema(schema)
    assert compile_schema(schema).classes["C"].props["x"].kind == "one"


def test_subclasses_and_resolve() -> None:
    schema = _schema(
        {"@type": "Class", "@id": "A"},
        {"@type": "Class", "@id": "B", "@inherits": "A"},
        {"@type": "Class", "@id": "C", "@inherits": "B"},
    )
    assert subclasses(schema, "A") == {"A", "B", "C"}
    assert subclasses(schema, "terminusdb:///schema#B") == {"B", "C"}
    assert resolve_type_name(schema, "terminusdb:///schema#C") == "C"
    assert resolve_type_name(schema, "Z") is None
    assert compile_schema(schema).classes["C"].props == {}
