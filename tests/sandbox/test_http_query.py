"""Query documents by example: ``GET /api/document/...`` with a JSON body ``{"query": {...}}``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer

COMMIT = {"author": "tester", "message": "test"}
SCHEMA = [
    {
        "@type": "Class",
        "@id": "Person",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "name": "xsd:string",
        "age": "xsd:decimal",
        "order": "xsd:integer",
    },
    {"@type": "Class", "@id": "Group", "people": {"@type": "Set", "@class": "Person"}},
    {"@type": "Class", "@id": "Friendship", "friend": {"@type": "Optional", "@class": "Person"}},
    {"@type": "Enum", "@id": "Colour", "@value": ["red", "blue"]},
    {"@type": "Class", "@id": "Car", "colour": "Colour", "tags": {"@type": "Set", "@class": "xsd:string"}},
]
ARISTOTLE = {"@type": "Person", "name": "Aristotle", "age": 61, "order": 3}
PLATO = {"@type": "Person", "name": "Plato", "age": 80, "order": 2}
SOCRATES = {"@type": "Person", "name": "Socrates", "age": 71, "order": 1}
KANT = {"@type": "Person", "name": "Immanuel Kant", "age": 79, "order": 3}
POPPER = {"@type": "Person", "name": "Karl Popper", "age": 92, "order": 5}
GODEL = {"@type": "Person", "name": "Kurt Gödel", "age": 71, "order": 5}


@pytest.fixture(scope="module")
def db(sandbox: SandboxServer) -> Iterator[str]:
    """One database for the whole module: every test here only reads."""
    name = f"query_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=sandbox.url, auth=("admin", "root"), timeout=30) as http:
        assert http.post(f"/api/db/admin/{name}", json={"label": name}).status_code == 200
        path = f"/api/document/admin/{name}"
        assert http.post(path, params={**COMMIT, "graph_type": "schema"}, json=SCHEMA).status_code == 200
        instances = [
            ARISTOTLE,
            PLATO,
            SOCRATES,
            {"@id": "Group/0", "@type": "Group", "people": [KANT, POPPER, GODEL]},
            {"@id": "Group/1", "@type": "Group", "people": []},
            {"@id": "Group/2", "@type": "Group"},
            {"@id": "Friendship/0", "@type": "Friendship", "friend": "Person/Immanuel%20Kant"},
            {"@id": "Friendship/2", "@type": "Friendship"},
            {"@id": "Car/0", "@type": "Car", "colour": "red", "tags": ["fast", "old"]},
            {"@id": "Car/1", "@type": "Car", "colour": "blue", "tags": ["slow"]},
        ]
        reply = http.post(path, params=COMMIT, json=instances)
        assert reply.status_code == 200, reply.text
        yield name
        http.delete(f"/api/db/admin/{name}")


def _query(admin_http: httpx.Client, db: str, body: dict[str, Any]) -> httpx.Response:
    return admin_http.request("GET", f"/api/document/admin/{db}", json=body)


def _names(reply: httpx.Response) -> list[str]:
    assert reply.status_code == 200, reply.text
    return sorted(d.get("name", d["@id"]) for d in reply.json())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "Plato"}, ["Plato"]),
        ({"age": 71}, ["Kurt Gödel", "Socrates"]),  # includes a person inserted nested in a group
        ({"age": "71"}, ["Kurt Gödel", "Socrates"]),  # the query value is cast to the property's type
        ({"order": 3}, ["Aristotle", "Immanuel Kant"]),
        ({"order": 3, "age": 61}, ["Aristotle"]),
        ({"name": {"@regex": "^K"}}, ["Karl Popper", "Kurt Gödel"]),
        ({"@id": "Person/Plato"}, ["Plato"]),
        ({"@id": {"@one-of": ["Person/Plato", "Person/Socrates"]}}, ["Plato", "Socrates"]),
        ({"age": 1000}, []),
    ],
)
def test_query_typed_values(admin_http: httpx.Client, db: str, query: dict[str, Any], expected: list[str]) -> None:
    assert _names(_query(admin_http, db, {"query": {"@type": "Person", **query}, "as_list": True})) == expected


def test_query_without_as_list_is_a_stream(admin_http: httpx.Client, db: str) -> None:
    reply = _query(admin_http, db, {"query": {"@type": "Person", "name": "Plato"}})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json; stream=true")
    assert reply.text == '{"@id":"Person/Plato","@type":"Person","name":"Plato","age":80,"order":2}\n'


def test_query_type_alone_equals_type_parameter(admin_http: httpx.Client, db: str) -> None:
    by_query = _query(admin_http, db, {"query": {"@type": "Person"}, "as_list": True}).json()
    by_type = admin_http.get(f"/api/document/admin/{db}", params={"type": "Person", "as_list": "true"}).json()
    assert by_query == by_type and len(by_query) == 6


def test_query_type_may_come_from_the_type_parameter(admin_http: httpx.Client, db: str) -> None:
    reply = _query(admin_http, db, {"query": {"name": "Plato"}, "type": "Person", "as_list": True})
    assert _names(reply) == ["Plato"]


def test_query_skip_and_count(admin_http: httpx.Client, db: str) -> None:
    everyone = _query(admin_http, db, {"query": {"@type": "Person"}, "as_list": True}).json()
    page = _query(admin_http, db, {"query": {"@type": "Person"}, "as_list": True, "skip": 1, "count": 2}).json()
    assert page == everyone[1:3]


def test_query_set_members(admin_http: httpx.Client, db: str) -> None:
    assert _query(admin_http, db, {"query": {"@type": "Group"}, "as_list": True}).json() == [
        {
            "@id": "Group/0",
            "@type": "Group",
            "people": ["Person/Immanuel%20Kant", "Person/Karl%20Popper", "Person/Kurt%20G%C3%B6del"],
        },
        {"@id": "Group/1", "@type": "Group"},
        {"@id": "Group/2", "@type": "Group"},
    ]
    member = {"@type": "Group", "people": "Person/Karl%20Popper"}
    assert [d["@id"] for d in _query(admin_http, db, {"query": member, "as_list": True}).json()] == ["Group/0"]
    nested = {"@type": "Group", "people": {"age": 92}}
    assert [d["@id"] for d in _query(admin_http, db, {"query": nested, "as_list": True}).json()] == ["Group/0"]
    string_member = {"@type": "Car", "tags": "old"}
    assert [d["@id"] for d in _query(admin_http, db, {"query": string_member, "as_list": True}).json()] == ["Car/0"]


def test_query_optional_fields(admin_http: httpx.Client, db: str) -> None:
    def ids(query: dict[str, Any]) -> list[str]:
        reply = _query(admin_http, db, {"query": {"@type": "Friendship", **query}, "as_list": True})
        assert reply.status_code == 200, reply.text
        return [d["@id"] for d in reply.json()]

    assert ids({}) == ["Friendship/0", "Friendship/2"]
    assert ids({"friend": None}) == ["Friendship/2"]
    assert ids({"friend": {}}) == ["Friendship/0"]
    assert ids({"friend": {"name": "Immanuel Kant"}}) == ["Friendship/0"]
    assert ids({"friend": "Person/Immanuel%20Kant"}) == ["Friendship/0"]


def test_query_enum_value(admin_http: httpx.Client, db: str) -> None:
    reply = _query(admin_http, db, {"query": {"@type": "Car", "colour": "blue"}, "as_list": True})
    assert [d["@id"] for d in reply.json()] == ["Car/1"]


def test_query_without_type_is_refused(admin_http: httpx.Client, db: str) -> None:
    reply = _query(admin_http, db, {"query": {"name": "Plato"}})
    assert reply.status_code == 400
    body = reply.json()
    assert body["@type"] == "api:GetDocumentErrorResponse"
    assert body["api:error"] == {"@type": "api:QueryMissingType"}


def test_query_with_unknown_type_is_refused(admin_http: httpx.Client, db: str) -> None:
    reply = _query(admin_http, db, {"query": {"@type": "Nope"}})
    assert reply.status_code == 400
    assert reply.json()["api:error"] == {"@type": "api:QueryTypeNotFound"}
    assert reply.json()["api:message"] == (
        "Query provided a type 'terminusdb:///schema#Nope' which was not found in the schema."
    )


@pytest.mark.parametrize(
    "query",
    [{"@type": "Person", "nope": 1}, {"@type": "Person", "age": "old"}, {"@type": "Car", "colour": "green"}],
)
def test_malformed_queries_are_400(admin_http: httpx.Client, db: str, query: dict[str, Any]) -> None:
    reply = _query(admin_http, db, {"query": query})
    assert reply.status_code == 400
    assert reply.json()["api:error"]["@type"] == "api:QueryError"
