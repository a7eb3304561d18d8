"""check_instances: commit-time witnesses (spec §3.7)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.documents import check_instances, prepare_instance
from sandbox.errors import SchemaCheckFailure
from sandbox.schema import DEFAULT_CONTEXT, prepare_schema_documents

S = "terminusdb:///schema#"
D = "terminusdb:///data/"


def _schema(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"@context": DEFAULT_CONTEXT, **{d["@id"]: d for d in prepare_schema_documents(list(docs))}}


BASE = _schema(
    {
        "@type": "Class",
        "@id": "Person",
        "name": {"@type": "Optional", "@class": "xsd:string"},
        "friend": {"@type": "Optional", "@class": "Person"},
    },
    {"@type": "Class", "@id": "Pet", "owner": {"@type": "Optional", "@class": "Person"}},
)


def _witness(schema: dict[str, Any], instances: dict[str, Any], changed: set[str] | None = None) -> dict[str, Any]:
    with pytest.raises(SchemaCheckFailure) as exc:
        check_instances(schema, instances, changed)
    assert len(exc.value.witnesses) == 1
    return exc.value.witnesses[0]


def test_newly_required_property_exact_shape() -> None:
    instances = {"Person/0": {"@id": "Person/0", "@type": "Person"}}
    check_instances(BASE, instances)
    stricter = _schema(
        {"@type": "Class", "@id": "Person", "name": "xsd:string", "friend": {"@type": "Optional", "@class": "Person"}}
    )
    assert _witness(stricter, instances) == {
        "@type": "instance_not_cardinality_one",
        "class": "http://www.w3.org/2001/XMLSchema#string",
        "instance": D + "Person/0",
        "predicate": S + "name",
    }


def test_removed_property_is_invalid_predicate() -> None:
    instances = {"Person/0": {"@id": "Person/0", "@type": "Person", "name": "x"}}
    schema = _schema({"@type": "Class", "@id": "Person"})
    assert _witness(schema, instances) == {
        "@type": "invalid_predicate",
        "class": S + "Person",
        "predicate": S + "name",
        "subject": D + "Person/0",
    }


def test_dangling_and_wrong_class_references() -> None:
    dangling = {"Person/a": {"@id": "Person/a", "@type": "Person", "friend": "Person/missing"}}
    assert _witness(BASE, dangling, {"Person/a"}) == {
        "@type": "instance_not_of_class",
        "class": S + "Person",
        "instance": D + "Person/missing",
    }
    wrong = {
        "Pet/p": {"@id": "Pet/p", "@type": "Pet"},
        "Person/a": {"@id": "Person/a", "@type": "Person", "friend": "Pet/p"},
    }
    assert _witness(BASE, wrong, {"Person/a"})["instance"] == D + "Pet/p"


def test_deleted_document_still_referenced() -> None:
    instances = {"Pet/p": {"@id": "Pet/p", "@type": "Pet", "owner": "Person/a"}}
    assert _witness(BASE, instances, {"Person/a"}) == {
        "@type": "deleted_object_still_referenced",
        "object": D + "Person/a",
        "predicate": S + "owner",
        "subject": D + "Pet/p",
    }


def test_only_changed_documents_are_checked() -> None:
    instances = {
        "Person/bad": {"@id": "Person/bad", "@type": "Person", "friend": "Person/missing"},
        "Person/ok": {"@id": "Person/ok", "@type": "Person"},
    }
    check_instances(BASE, instances, {"Person/ok"})


def test_ten_thousand_documents() -> None:
    instances: dict[str, Any] = {}
    for i in range(10_000):
        doc = {"@type": "Person", "@id": f"Person/{i}", "name": f"n{i}", "friend": f"Person/{max(i - 1, 0)}"}
        doc_id, stored = prepare_instance(BASE, doc)
        instances[doc_id] = stored
    check_instances(BASE, instances, set(instances))
    check_instances(BASE, instances)
