"""prepare_instance: validation witnesses and stored form of submitted documents (spec §3.5/§3.6)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.documents import compress_id, expand_id, prepare_instance
from sandbox.errors import ApiError, SchemaCheckFailure
from sandbox.schema import DEFAULT_CONTEXT, prepare_schema_documents

S = "terminusdb:///schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"

SCHEMA_DOCS: list[dict[str, Any]] = [
    {
        "@type": "Class",
        "@id": "Person",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "name": "xsd:string",
        "age": {"@type": "Optional", "@class": "xsd:integer"},
        "height": {"@type": "Optional", "@class": "xsd:decimal"},
        "born": {"@type": "Optional", "@class": "xsd:date"},
        "seen": {"@type": "Optional", "@class": "xsd:dateTime"},
        "alive": {"@type": "Optional", "@class": "xsd:boolean"},
        "friends": {"@type": "Set", "@class": "Person"},
        "nicknames": {"@type": "List", "@class": "xsd:string"},
        "colour": {"@type": "Optional", "@class": "Colour"},
        "address": {"@type": "Optional", "@class": "Address"},
    },
    {"@type": "Class", "@id": "Address", "@subdocument": [], "@key": {"@type": "Random"}, "street": "xsd:string"},
    {"@type": "Enum", "@id": "Colour", "@value": ["red", "blue"]},
    {"@type": "Class", "@id": "Animal", "@abstract": [], "name": "xsd:string"},
    {"@type": "Class", "@id": "Dog", "@inherits": "Animal", "barks": "xsd:boolean"},
    {"@type": "Class", "@id": "T", "a": "xsd:string"},
    {"@type": "Class", "@id": "Card", "a": {"@type": "Cardinality", "@class": "xsd:integer", "@cardinality": 1}},
    {"@type": "Class", "@id": "Max", "a": {"@type": "Set", "@class": "xsd:integer", "@max_cardinality": 2}},
    {"@type": "TaggedUnion", "@id": "U", "s": "xsd:string", "i": "xsd:integer"},
]
SCHEMA = {"@context": DEFAULT_CONTEXT, **{d["@id"]: d for d in prepare_schema_documents(SCHEMA_DOCS)}}


def _witness(doc: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(SchemaCheckFailure) as exc:
        prepare_instance(SCHEMA, doc)
    assert len(exc.value.witnesses) == 1
    return exc.value.witnesses[0]


def _api_error(doc: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as exc:
        prepare_instance(SCHEMA, doc)
    assert not isinstance(exc.value, SchemaCheckFailure)
    return exc.value


def test_stored_form_normalises_values() -> None:
    doc_id, stored = prepare_instance(
        SCHEMA,
        {
            "@type": "Person",
            "name": "Plato",
            "age": "80",
            "height": "1.75",
            "born": "0427-01-01",
            "alive": False,
            "friends": ["Person/Socrates", "terminusdb:///data/Person/Socrates"],
            "nicknames": [],
            "colour": "red",
        },
    )
    assert doc_id == "Person/Plato"
    assert stored == {
        "@id": "Person/Plato",
        "@type": "Person",
        "name": "Plato",
        "age": 80,
        "height": 1.75,
        "born": "0427-01-01",
        "alive": False,
        "friends": ["Person/Socrates"],
        "nicknames": [],
        "colour": "red",
    }


def test_subdocument_inlined_with_path_id() -> None:
    _, stored = prepare_instance(
        SCHEMA, {"@type": "Person", "name": "Ann", "nicknames": [], "address": {"@type": "Address", "street": "Main"}}
    )
    sub = stored["address"]
    assert (
        sub["@id"].startswith("Person/Ann/address/Address/")
        and len(sub["@id"]) == len("Person/Ann/address/Address/") + 16
    )
    assert sub["@type"] == "Address" and sub["street"] == "Main"


def test_missing_required_property() -> None:
    assert _witness({"@type": "T"}) == {
        "@type": "required_field_does_not_exist_in_document",
        "document": {"@type": S + "T"},
        "field": S + "a",
    }


def test_unknown_property() -> None:
    assert _witness({"@type": "T", "a": "x", "unknown": "abc"}) == {
        "@type": "unknown_property_for_type",
        "document": {"@type": S + "T", S + "a": "x", S + "unknown": "abc"},
        "property": [S + "unknown"],
        "type": S + "T",
    }


def test_wrong_base_type_value() -> None:
    assert _witness({"@type": "Person", "name": "X", "nicknames": [], "age": "abc"}) == {
        S + "age": {"@type": "could_not_interpret_as_type", "value": "abc", "type": XSD + "integer"}
    }
    assert S + "seen" in _witness({"@type": "Person", "name": "X", "nicknames": [], "seen": "2021-13-01T00:00:00Z"})
    assert S + "born" in _witness({"@type": "Person", "name": "X", "nicknames": [], "born": "yesterday"})


def test_unexpected_boolean_value() -> None:
    for value in (True, False):
        err = _api_error({"@type": "T", "a": value})
        assert err.error == {
            "@type": "api:UnexpectedBooleanValue",
            "api:value": value,
            "api:expected_type": XSD + "string",
        }


def test_unexpected_list() -> None:
    assert _witness({"@type": "T", "a": ["x", "y"]}) == {
        "@type": "unexpected_list",
        "type": XSD + "string",
        "value": ["x", "y"],
    }


def test_abstract_class() -> None:
    assert _witness({"@type": "Animal", "@id": "Animal/invalid", "name": "x"}) == {
        "@type": "reifying_abstract_class",
        "class": S + "Animal",
        "subject": "terminusdb:///data/Animal/invalid",
    }
    assert _witness({"@type": "Animal", "name": "x"})["subject"] == "unknown"


def test_inherited_properties_are_required_and_accepted() -> None:
    doc_id, stored = prepare_instance(SCHEMA, {"@type": "Dog", "@id": "Dog/rex", "name": "Rex", "barks": True})
    assert doc_id == "Dog/rex" and stored["name"] == "Rex" and stored["barks"] is True
    assert _witness({"@type": "Dog", "barks": True})["field"] == S + "name"


def test_enum_value() -> None:
    assert _witness({"@type": "Person", "name": "X", "nicknames": [], "colour": "green"})["@type"] == "not_a_valid_enum"


def test_cardinality() -> None:
    assert _witness({"@type": "Card"})["@type"] == "required_field_does_not_exist_in_document"
    assert _witness({"@type": "Max", "a": [42, 23, 12]}) == {
        "@type": "field_has_wrong_cardinality",
        "actual": 3,
        "document": {"@type": S + "Max", S + "a": [42, 23, 12]},
        "field": S + "a",
        "min": 0,
        "max": 2,
    }
    assert _witness({"@type": "Card", "a": [1, 2]})["min"] == 1


def test_tagged_union_needs_exactly_one() -> None:
    assert prepare_instance(SCHEMA, {"@type": "U", "@id": "U/1", "s": "x"})[1]["s"] == "x"
    assert _witness({"@type": "U", "s": "x", "i": 1})["@type"] == "choice_has_too_many_answers"
    assert _witness({"@type": "U"})["@type"] == "no_choice_is_cardinality_one"


def test_type_inference() -> None:
    assert prepare_instance(SCHEMA, {"a": "hello"})[1]["@type"] == "T"
    assert _witness({"zzz": 1}) == {"@type": "no_unique_type_for_document", "document": {"zzz": 1}}


def test_unknown_type_prefix_and_marker() -> None:
    assert _witness({"@type": "Nope"}) == {
        "@type": "ascribed_type_does_not_exist",
        "ascribed_type": S + "Nope",
        "document": {"@type": "Nope"},
    }
    assert _api_error({"@type": "T", "foo:bar": "x"}).error == {"@type": "api:UnknownPrefixError", "api:key": "foo:bar"}
    err = _api_error({"@type": "T", "a": "__TERMINUS_NUM__123"})
    assert err.error["@type"] == "api:ReservedMarkerInString" and err.error["api:marker"] == "__TERMINUS_NUM__"
    assert "String values cannot start with reserved marker prefix" in err.message


def test_subdocument_at_top_level() -> None:
    doc = {"@type": "Address", "street": "x"}
    assert _api_error(doc).error == {"@type": "api:InsertedSubdocumentAsDocument", "api:document": doc}


def test_submitted_id_checks() -> None:
    err = _api_error({"@type": "Person", "@id": "Person/Y", "name": "X", "nicknames": []})
    assert err.error["@type"] == "api:SubmittedIdDoesNotMatchGeneratedId"
    assert err.error["api:submitted_id"] == "terminusdb:///data/Person/Y"
    assert err.error["api:generated_id"] == "terminusdb:///data/Person/X"
    err = _api_error({"@type": "T", "@id": "Other/1", "a": "x"})
    assert err.error["@type"] == "api:SubmittedDocumentIdDoesNotHaveExpectedPrefix"
    assert err.error["api:submitted_id"] == "terminusdb:///data/Other/1"
    assert err.error["api:prefix"] == "terminusdb:///data/T/"


def test_expanded_keys_accepted_and_id_helpers() -> None:
    _, stored = prepare_instance(SCHEMA, {"@type": S + "T", "@id": "T/1", S + "a": "x"})
    assert stored == {"@id": "T/1", "@type": "T", "a": "x"}
    assert expand_id(SCHEMA, "T/1") == "terminusdb:///data/T/1"
    assert compress_id(SCHEMA, "terminusdb:///data/T/1") == "T/1"
    assert compress_id(SCHEMA, "http://other/x") == "http://other/x"
