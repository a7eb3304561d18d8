"""Shape checks of submitted schema documents and their stored GET form (spec §3.3/§3.4/§9)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.errors import ApiError
from sandbox.schema import check_context, prepare_schema_documents


def _error(doc: Any) -> ApiError:
    with pytest.raises(ApiError) as exc:
        prepare_schema_documents([doc])
    return exc.value


def test_missing_and_bad_id_or_type() -> None:
    doc = {"@type": "Class"}
    assert _error(doc).error == {"@type": "api:MissingField", "api:field": "@id", "api:document": doc}
    doc2 = {"@id": "A"}
    assert _error(doc2).error == {"@type": "api:MissingField", "api:field": "@type", "api:document": doc2}
    doc3 = {"@type": "Class", "@id": ""}
    assert _error(doc3).error == {
        "@type": "api:BadFieldValue",
        "api:field": "@id",
        "api:value": "",
        "api:document": doc3,
    }
    assert _error({"@type": "Klass", "@id": "A"}).error["@type"] == "api:UnknownSchemaType"


@pytest.mark.parametrize("name", ["JSONDocument", "sys:JSONDocument", "http://terminusdb.com/schema/sys#JSONDocument"])
def test_json_document_is_reserved(name: str) -> None:
    assert _error({"@type": "Class", "@id": name}).error == {
        "@type": "api:DocumentInsertionReservedName",
        "api:id": name,
    }


def test_at_prefixed_property_message() -> None:
    doc = {"@type": "Class", "@id": "A", "@lifecycle": "x"}
    err = _error(doc)
    assert err.error == {
        "@type": "api:AtPrefixedPropertiesNotSupported",
        "api:property": "@lifecycle",
        "api:document": doc,
    }
    assert err.message == (
        "@-prefixed properties like '@lifecycle' are not supported in schema definitions. "
        "Only sys:JSON and sys:JSONDocument types support @-prefixed keys."
    )


def test_key_errors() -> None:
    base = {"@type": "Class", "@id": "A", "n": "xsd:string"}
    d = {**base, "@key": "Lexical"}
    assert _error(d).error == {"@type": "api:DocumentKeyNotObject", "api:key_value": "Lexical", "api:document": d}
    d = {**base, "@key": {"@fields": ["n"]}}
    assert _error(d).error == {"@type": "api:DocumentKeyTypeMissing", "api:key": '{"@fields":["n"]}', "api:document": d}
    d = {**base, "@key": {"@type": "Foo"}}
    assert _error(d).error == {"@type": "api:DocumentKeyTypeUnknown", "api:key_type": "Foo", "api:document": d}
    d = {**base, "@key": {"@type": "Lexical"}}
    assert _error(d).error == {"@type": "api:KeyMissingFields", "api:key_type": "Lexical", "api:document": d}
    d = {**base, "@key": {"@type": "Hash", "@fields": "n"}}
    assert _error(d).error == {"@type": "api:KeyFieldsNotAnArray", "api:fields": "n", "api:document": d}
    d = {**base, "@key": {"@type": "Lexical", "@fields": []}}
    assert _error(d).error == {"@type": "api:KeyFieldsIsEmpty", "api:document": d}
    d = {**base, "@subdocument": []}
    assert _error(d).error == {"@type": "api:SubdocumentKeyMissing", "api:document": d}


def test_enum_without_values_and_json_document_range() -> None:
    d = {"@type": "Enum", "@id": "E"}
    assert _error(d).error == {"@type": "api:InvalidEnumValues", "api:document": d}
    err = _error({"@type": "Class", "@id": "A", "j": {"@type": "Optional", "@class": "sys:JSONDocument"}})
    assert err.error == {"@type": "api:JSONDocumentInvalidRangeError", "api:field": "j"}


def test_get_form_normalisation() -> None:
    [doc] = prepare_schema_documents(
        [
            {
                "@type": "Class",
                "@id": "B",
                "@inherits": ["A"],
                "@key": {"@type": "Random"},
                "s": "http://www.w3.org/2001/XMLSchema#string",
                "c": {"@type": "Cardinality", "@class": "xsd:integer", "@cardinality": 2},
                "r": {"@type": "Set", "@class": "terminusdb:///schema#A"},
                "o": {"@type": "Optional", "@class": "A"},
            }
        ]
    )
    assert doc == {
        "@id": "B",
        "@type": "Class",
        "@key": {"@type": "Random"},
        "@inherits": "A",
        "s": "xsd:string",
        "c": {"@type": "Cardinality", "@class": "xsd:integer", "@min_cardinality": 2, "@max_cardinality": 2},
        "r": {"@type": "Set", "@class": "A"},
        "o": {"@type": "Optional", "@class": "A"},
    }
    [plain] = prepare_schema_documents([{"@type": "Class", "@id": "P", "@inherits": "A", "@abstract": []}])
    assert plain == {"@id": "P", "@type": "Class", "@inherits": "A", "@abstract": []}
    [multi] = prepare_schema_documents([{"@type": "Class", "@id": "M", "@inherits": ["A", "B"]}])
    assert multi["@inherits"] == ["A", "B"]


def test_enum_and_tagged_union_round_trip() -> None:
    docs = [
        {"@type": "Enum", "@id": "Colour", "@value": ["red", "blue"]},
        {"@type": "TaggedUnion", "@id": "U", "a": "xsd:string", "b": "xsd:integer"},
    ]
    assert prepare_schema_documents(docs) == [
        {"@id": "Colour", "@type": "Enum", "@value": ["red", "blue"]},
        {"@id": "U", "@type": "TaggedUnion", "a": "xsd:string", "b": "xsd:integer"},
    ]


def test_check_context() -> None:
    ctx = {
        "@type": "@context",
        "@base": "terminusdb:///data/",
        "@schema": "terminusdb:///schema#",
        "ex": "http://e.org/",
    }
    assert check_context(ctx) == ctx
    with pytest.raises(ApiError) as exc:
        check_context({"@type": "@context", "@schema": "terminusdb:///schema#"})
    assert exc.value.error["@type"] == "api:MissingField"
