"""Schema document writes: repeated full replaces, returned ids, unknown classes in type families, @oneOf."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

COMMIT = {"author": "tester", "message": "test"}
CONTEXT = {"@type": "@context", "@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
SCHEMA = [
    CONTEXT,
    {
        "@type": "Class",
        "@id": "Person",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "@documentation": {"@comment": "A person"},
        "name": "xsd:string",
        "addresses": {"@type": "Set", "@class": "Address"},
        "colour": {"@type": "Optional", "@class": "Colour"},
    },
    {"@type": "Class", "@id": "Address", "@subdocument": [], "@key": {"@type": "Random"}, "street": "xsd:string"},
    {"@type": "Enum", "@id": "Colour", "@value": ["red", "blue"]},
    {"@type": "Class", "@id": "Child", "@inherits": "Person", "toy": {"@type": "Optional", "@class": "xsd:string"}},
]


def _schema_post(admin_http: httpx.Client, db: str, docs: list[Any], **params: str) -> httpx.Response:
    return admin_http.post(f"/api/document/admin/{db}", params={**COMMIT, "graph_type": "schema", **params}, json=docs)


def test_same_schema_full_replace_twice_succeeds_and_omits_the_context_id(
    admin_http: httpx.Client, fresh_db: str
) -> None:
    for _ in range(2):
        reply = _schema_post(admin_http, fresh_db, SCHEMA, full_replace="true")
        assert reply.status_code == 200, reply.text
        assert reply.json() == ["Person", "Address", "Colour", "Child"]
    assert (
        admin_http.post(
            f"/api/document/admin/{fresh_db}", params=COMMIT, json=[{"@type": "Child", "name": "Ann", "addresses": []}]
        ).status_code
        == 200
    )
    again = _schema_post(admin_http, fresh_db, SCHEMA, full_replace="true")
    assert again.status_code == 200, again.text
    assert "@context" not in again.json()
    stored = admin_http.get(f"/api/document/admin/{fresh_db}", params={"graph_type": "schema", "as_list": "true"})
    assert stored.json()[0] == CONTEXT
    log = admin_http.get(f"/api/log/admin/{fresh_db}").json()
    assert len(log) == 2  # the repeated identical replaces made no commit of their own


def test_plain_schema_insert_returns_the_ids_as_submitted(admin_http: httpx.Client, fresh_db: str) -> None:
    reply = _schema_post(admin_http, fresh_db, SCHEMA[1:])
    assert reply.status_code == 200, reply.text
    assert reply.json() == ["Person", "Address", "Colour", "Child"]


@pytest.mark.parametrize(
    "family",
    [
        {"@type": "Set", "@class": "Nope"},
        {"@type": "Optional", "@class": "Nope"},
        {"@type": "List", "@class": "Nope"},
        {"@type": "Array", "@class": "Nope"},
        {"@type": "Cardinality", "@class": "Nope", "@cardinality": 2},
    ],
)
def test_type_family_of_an_unknown_class_is_a_schema_check_failure(
    admin_http: httpx.Client, fresh_db: str, family: dict[str, Any]
) -> None:
    reply = _schema_post(admin_http, fresh_db, [{"@type": "Class", "@id": "G", "xs": family}])
    assert reply.status_code == 400
    body = reply.json()
    assert body["api:error"] == {
        "@type": "api:SchemaCheckFailure",
        "api:witnesses": [{"@type": "not_a_class_or_base_type", "class": "terminusdb:///schema#Nope"}],
    }
    assert body["api:message"] == "Schema check failure"


def test_one_of_with_two_choices_filled_gives_terminusdb_witness(admin_http: httpx.Client, fresh_db: str) -> None:
    schema = {"@type": "Class", "@id": "Choice", "@oneOf": [{"integer": "xsd:integer", "string": "xsd:string"}]}
    assert _schema_post(admin_http, fresh_db, [schema]).status_code == 200
    path = f"/api/document/admin/{fresh_db}"
    ok = admin_http.post(path, params=COMMIT, json=[{"@id": "Choice/a", "@type": "Choice", "integer": 5}])
    assert ok.status_code == 200, ok.text
    both = {"@id": "Choice/b", "@type": "Choice", "integer": -29, "string": "s"}
    reply = admin_http.post(path, params=COMMIT, json=[both])
    assert reply.status_code == 400
    choice = {
        "terminusdb:///schema#integer": "http://www.w3.org/2001/XMLSchema#integer",
        "terminusdb:///schema#string": "http://www.w3.org/2001/XMLSchema#string",
    }
    assert reply.json()["api:error"]["api:witnesses"] == [
        {
            "@type": "choice_has_too_many_answers",
            "choice": choice,
            "document": {
                "@id": "terminusdb:///data/Choice/b",
                "@type": "terminusdb:///schema#Choice",
                "terminusdb:///schema#integer": -29,
                "terminusdb:///schema#string": "s",
            },
        }
    ]
    none = admin_http.post(path, params=COMMIT, json=[{"@id": "Choice/c", "@type": "Choice"}])
    assert none.status_code == 400
    witness = none.json()["api:error"]["api:witnesses"][0]
    assert witness["@type"] == "no_choice_is_cardinality_one" and witness["choice"] == choice
