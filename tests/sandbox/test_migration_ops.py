"""apply_operations: the migration operations and their errors (spec §4.2-§4.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.documents import prepare_instance
from sandbox.errors import ApiError, GenericError, UnhandledError
from sandbox.migration import apply_operations
from sandbox.schema import DEFAULT_CONTEXT, prepare_schema_documents


def _schema(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"@context": DEFAULT_CONTEXT, **{d["@id"]: d for d in prepare_schema_documents(list(docs))}}


SCHEMA = _schema(
    {"@type": "Class", "@id": "Animal", "name": "xsd:string"},
    {"@type": "Class", "@id": "Dog", "@inherits": "Animal", "tail": {"@type": "Optional", "@class": "xsd:boolean"}},
    {"@type": "Class", "@id": "Other", "x": {"@type": "Optional", "@class": "xsd:string"}},
    {"@type": "Enum", "@id": "Colour", "@value": ["red"]},
)


def _instances(schema: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(prepare_instance(schema, d) for d in docs)


INSTANCES = _instances(
    SCHEMA,
    [
        {"@type": "Animal", "@id": "Animal/cat", "name": "Cat"},
        {"@type": "Dog", "@id": "Dog/rex", "name": "Rex", "tail": True},
        {"@type": "Other", "@id": "Other/o"},
    ],
)


def test_create_optional_property_without_default() -> None:
    op = {
        "@type": "CreateClassProperty",
        "class": "Animal",
        "property": "nick",
        "type": {"@type": "Optional", "@class": "xsd:string"},
    }
    schema, instances, n = apply_operations(SCHEMA, INSTANCES, [op])
    assert n == 0 and instances == INSTANCES
    assert schema["Animal"]["nick"] == {"@type": "Optional", "@class": "xsd:string"}
    assert "nick" not in SCHEMA["Animal"]  # inputs untouched


def test_create_required_property_with_default_covers_subclasses() -> None:
    op = {
        "@type": "CreateClassProperty",
        "class": "Animal",
        "property": "created_by",
        "type": "xsd:string",
        "default": "system",
    }
    _, instances, n = apply_operations(SCHEMA, INSTANCES, [op])
    assert n == 2
    assert instances["Animal/cat"]["created_by"] == "system"
    assert instances["Dog/rex"]["created_by"] == "system"
    assert "created_by" not in instances["Other/o"]
    assert "created_by" not in INSTANCES["Dog/rex"]


def test_create_required_property_without_default_is_500_even_without_instances() -> None:
    op = {"@type": "CreateClassProperty", "class": "Other", "property": "req", "type": "xsd:string"}
    with pytest.raises(UnhandledError):
        apply_operations(SCHEMA, {}, [op])


def test_create_list_property_without_default_gives_empty_lists() -> None:
    op = {
        "@type": "CreateClassProperty",
        "class": "Animal",
        "property": "tags",
        "type": {"@type": "List", "@class": "xsd:string"},
    }
    _, instances, n = apply_operations(SCHEMA, INSTANCES, [op])
    assert n == 2 and instances["Dog/rex"]["tags"] == []


def test_create_property_already_in_class_fails_with_schema_operation_failed() -> None:
    op = {"@type": "CreateClassProperty", "class": "Animal", "property": "name", "type": "xsd:string", "default": "x"}
    with pytest.raises(ApiError) as exc:
        apply_operations(SCHEMA, INSTANCES, [op])
    err = exc.value
    text = err.error["api:schema_operation"]
    assert err.error["@type"] == "api:SchemaOperationFailed" and json.loads(text) == op
    assert err.error["api:schema"] == SCHEMA and "@context" in err.error["api:schema"]
    assert err.message == f"The schema operation '{text}' failed and could not be performed"


def test_redeclaring_parent_property_same_range_accepted_else_500() -> None:
    # the only Dog already has name "Rex": inserting the identical value is a no-op (RDF set semantics)
    same = {"@type": "CreateClassProperty", "class": "Dog", "property": "name", "type": "xsd:string", "default": "Rex"}
    schema, instances, _ = apply_operations(SCHEMA, INSTANCES, [same])
    assert schema["Dog"]["name"] == "xsd:string" and instances["Dog/rex"]["name"] == "Rex"
    # a different default gives the instance two names, which fails validation
    other = {**same, "default": "d"}
    with pytest.raises(GenericError):
        apply_operations(SCHEMA, INSTANCES, [other])
    weaker = {
        "@type": "CreateClassProperty",
        "class": "Dog",
        "property": "name",
        "type": {"@type": "Optional", "@class": "xsd:string"},
    }
    with pytest.raises(UnhandledError):
        apply_operations(SCHEMA, INSTANCES, [weaker])


def test_missing_class_fails() -> None:
    op = {"@type": "CreateClassProperty", "class": "Nope", "property": "p", "type": "xsd:string"}
    with pytest.raises(ApiError) as exc:
        apply_operations(SCHEMA, INSTANCES, [op])
    assert exc.value.error["@type"] == "api:SchemaOperationFailed"


def test_delete_class_property() -> None:
    op = {"@type": "DeleteClassProperty", "class": "Dog", "property": "tail"}
    schema, instances, n = apply_operations(SCHEMA, INSTANCES, [op])
    assert n == 1 and "tail" not in schema["Dog"] and "tail" not in instances["Dog/rex"]
    inherited = {"@type": "DeleteClassProperty", "class": "Dog", "property": "name"}
    with pytest.raises(ApiError) as exc:
        apply_operations(SCHEMA, INSTANCES, [inherited])
    assert exc.value.error["@type"] == "api:SchemaOperationFailed"


def test_create_and_delete_class() -> None:
    create = {"@type": "CreateClass", "class_document": {"@type": "Class", "@id": "New", "a": "xsd:string"}}
    schema, _, n = apply_operations(SCHEMA, INSTANCES, [create])
    assert n == 0 and schema["New"] == {"@id": "New", "@type": "Class", "a": "xsd:string"}
    with pytest.raises(GenericError) as exc:  # subclass Dog would be left without its parent
        apply_operations(SCHEMA, INSTANCES, [{"@type": "DeleteClass", "class": "Animal"}])
    assert exc.value.body["api:message"] == "Schema check failure"
    schema, instances, n = apply_operations(
        SCHEMA, INSTANCES, [{"@type": "DeleteClass", "class": "Animal"}], validate=False
    )
    assert n == 2 and list(instances) == ["Other/o"] and "Animal" not in schema


def test_expand_enum() -> None:
    schema, _, n = apply_operations(
        SCHEMA, INSTANCES, [{"@type": "ExpandEnum", "enum": "Colour", "values": ["blue", "red"]}]
    )
    assert n == 0 and schema["Colour"]["@value"] == ["red", "blue"]


@pytest.mark.parametrize(
    "op",
    [
        {"@type": "CreateClassProperty", "class": "Animal", "property": "p", "type": "xsd:string", "extra": 1},
        {"@type": "DeleteClassProperty", "class": "Animal"},
        {"@type": "Frobnicate"},
        "DeleteClass",
    ],
)
def test_bad_operation_shape(op: Any) -> None:
    with pytest.raises(ApiError) as exc:
        apply_operations(SCHEMA, INSTANCES, [op])
    assert exc.value.error == {"@type": "api:UnknownSchemaMigrationOperation", "api:operation": op}


def test_replace_context_not_implemented() -> None:
    with pytest.raises(ApiError) as exc:
        apply_operations(SCHEMA, INSTANCES, [{"@type": "ReplaceContext", "context": {}}])
    assert exc.value.error["@type"] == "api:OperationNotImplemented"


def test_post_migration_validation_uses_generic_shape() -> None:
    op = {
        "@type": "UpcastClassProperty",
        "class": "Other",
        "property": "x",
        "type": {"@type": "Set", "@class": "xsd:string"},
    }
    schema, _, _ = apply_operations(SCHEMA, INSTANCES, [op])
    assert schema["Other"]["x"] == {"@type": "Set", "@class": "xsd:string"}
    bad = {
        "@type": "CreateClassProperty",
        "class": "Other",
        "property": "r",
        "type": "Animal",
        "default": "Animal/none",
    }
    with pytest.raises(GenericError) as exc:
        apply_operations(SCHEMA, INSTANCES, [bad])
    assert exc.value.http_status == 400
    assert set(exc.value.body) == {"api:message", "api:status", "system:witnesses"}


def test_upcast_must_weaken_and_metadata_ops() -> None:
    op = {"@type": "UpcastClassProperty", "class": "Animal", "property": "name", "type": "xsd:integer"}
    with pytest.raises(ApiError) as exc:
        apply_operations(SCHEMA, INSTANCES, [op])
    assert exc.value.error["@type"] == "api:UpcastNotASchemaWeakening"
    ops = [
        {"@type": "ReplaceClassMetadata", "class": "Other", "metadata": {"k": 1}},
        {"@type": "ReplaceClassDocumentation", "class": "Other", "documentation": {"@comment": "c"}},
        {"@type": "Abstract", "class": "Other"},
    ]
    schema, instances, n = apply_operations(SCHEMA, INSTANCES, ops)
    assert schema["Other"]["@metadata"] == {"k": 1} and schema["Other"]["@abstract"] == []
    assert n == 1 and "Other/o" not in instances


def test_ten_thousand_instances_create_property() -> None:
    instances = _instances(SCHEMA, [{"@type": "Animal", "@id": f"Animal/{i}", "name": str(i)} for i in range(10_000)])
    op = {"@type": "CreateClassProperty", "class": "Animal", "property": "by", "type": "xsd:string", "default": "me"}
    _, out, n = apply_operations(SCHEMA, instances, [op])
    assert n == 10_000 and out["Animal/9999"]["by"] == "me"
