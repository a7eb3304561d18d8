"""Id generation per key strategy (spec §3.5 examples)."""

from __future__ import annotations

import re

from sandbox.documents import prepare_instance
from sandbox.ids import encode_fragment, hash_id, lexical_id, random_id
from sandbox.schema import DEFAULT_CONTEXT, prepare_schema_documents


def _schema(*docs: dict) -> dict:
    return {"@context": DEFAULT_CONTEXT, **{d["@id"]: d for d in prepare_schema_documents(list(docs))}}


PERSON = {"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"}


def test_encode_fragment_escapes_space_slash_plus_and_utf8() -> None:
    assert encode_fragment("Immanuel Kant") == "Immanuel%20Kant"
    assert encode_fragment("Kurt Gödel") == "Kurt%20G%C3%B6del"
    assert encode_fragment("X/1") == "X%2F1"
    assert encode_fragment("a+b") == "a%2Bb"


def test_lexical_ids_from_spec_examples() -> None:
    schema = _schema(
        PERSON, {"@type": "Class", "@id": "X", "@key": {"@type": "Lexical", "@fields": ["n"]}, "n": "xsd:string"}
    )
    assert prepare_instance(schema, {"@type": "Person", "name": "Plato"})[0] == "Person/Plato"
    assert prepare_instance(schema, {"@type": "Person", "name": "Immanuel Kant"})[0] == "Person/Immanuel%20Kant"
    assert prepare_instance(schema, {"@type": "Person", "name": "Kurt Gödel"})[0] == "Person/Kurt%20G%C3%B6del"
    assert prepare_instance(schema, {"@type": "X", "n": "X/1"})[0] == "X/X%2F1"


def test_lexical_two_fields_date_and_missing_optional() -> None:
    schema = _schema(
        {
            "@type": "Class",
            "@id": "Person",
            "@key": {"@type": "Lexical", "@fields": ["name", "birthday"]},
            "name": "xsd:string",
            "birthday": "xsd:date",
        },
        {
            "@type": "Class",
            "@id": "Thing",
            "@key": {"@type": "Lexical", "@fields": ["opt"]},
            "opt": {"@type": "Optional", "@class": "xsd:string"},
        },
    )
    assert prepare_instance(schema, {"@type": "Person", "name": "jane", "birthday": "1979-12-28"})[0] == (
        "Person/jane+1979-12-28"
    )
    assert prepare_instance(schema, {"@type": "Thing"})[0] == "Thing/+none+"
    assert lexical_id("T/", [["a", "b"], "c"]) == "T/a++b+c"


def test_hash_is_sha256_of_lexical_suffix() -> None:
    schema = _schema({**PERSON, "@id": "Employee", "@key": {"@type": "Hash", "@fields": ["name"]}})
    doc_id, _ = prepare_instance(schema, {"@type": "Employee", "name": "Plato"})
    assert re.fullmatch(r"Employee/[0-9a-f]{64}", doc_id)
    assert "terminusdb:///data/" + doc_id == hash_id("terminusdb:///data/Employee/", ["Plato"])


def test_random_and_default_keys_use_16_url_safe_chars() -> None:
    schema = _schema({"@type": "Class", "@id": "R", "@key": {"@type": "Random"}}, {"@type": "Class", "@id": "D"})
    for cls in ("R", "D"):
        doc_id, _ = prepare_instance(schema, {"@type": cls})
        assert re.fullmatch(rf"{cls}/[A-Za-z0-9_-]{{16}}", doc_id)
    assert re.fullmatch(r"B/[A-Za-z0-9_-]{16}", random_id("B/"))


def test_value_hash_is_stable_and_content_dependent() -> None:
    schema = _schema({"@type": "Class", "@id": "V", "@key": {"@type": "ValueHash"}, "a": "xsd:string"})
    a1, _ = prepare_instance(schema, {"@type": "V", "a": "x"})
    a2, _ = prepare_instance(schema, {"@type": "V", "a": "x"})
    b, _ = prepare_instance(schema, {"@type": "V", "a": "y"})
    assert a1 == a2 != b
    assert re.fullmatch(r"V/[0-9a-f]{64}", a1)


def test_custom_base_and_subdocument_ids() -> None:
    schema = _schema(
        {
            "@type": "Class",
            "@id": "Person",
            "@base": "people/",
            "@key": {"@type": "Lexical", "@fields": ["name"]},
            "name": "xsd:string",
            "address": "Address",
        },
        {
            "@type": "Class",
            "@id": "Address",
            "@subdocument": [],
            "@key": {"@type": "Lexical", "@fields": ["street"]},
            "street": "xsd:string",
        },
    )
    doc_id, stored = prepare_instance(schema, {"@type": "Person", "name": "Ann", "address": {"street": "Main St"}})
    assert doc_id == "people/Ann"
    assert stored["address"] == {"@id": "people/Ann/address/Address/Main%20St", "@type": "Address", "street": "Main St"}


def test_submitted_ids_full_or_compressed() -> None:
    schema = _schema(PERSON, {"@type": "Class", "@id": "R"})
    assert prepare_instance(schema, {"@type": "Person", "@id": "Person/Plato", "name": "Plato"})[0] == "Person/Plato"
    full = {"@type": "Person", "@id": "terminusdb:///data/Person/Plato", "name": "Plato"}
    assert prepare_instance(schema, full)[0] == "Person/Plato"
    assert prepare_instance(schema, {"@type": "R", "@id": "terminusdb:///data/R/1"})[0] == "R/1"
