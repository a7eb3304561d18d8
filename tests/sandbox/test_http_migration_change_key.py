"""``ChangeKey`` through ``/api/migration``: instances of the class are re-inserted under the new key and
every link to them is rewritten (TerminusDB ``document/migration.pl``)."""

from __future__ import annotations

import re

import httpx
import pytest

COMMIT = {"author": "tester", "message": "migrate"}
SCHEMA = [
    {"@type": "Class", "@id": "A", "a": "xsd:string"},
    {"@type": "Class", "@id": "B", "@inherits": "A"},
    {
        "@type": "Class",
        "@id": "Holder",
        "b": {"@type": "Set", "@class": "B"},
        "a": {"@type": "Optional", "@class": "A"},
    },
]


@pytest.fixture
def db(admin_http: httpx.Client, fresh_db: str) -> str:
    path = f"/api/document/admin/{fresh_db}"
    assert admin_http.post(path, params={**COMMIT, "graph_type": "schema"}, json=SCHEMA).status_code == 200
    docs = [
        {"@type": "A", "@id": "A/1", "a": "foo"},
        {"@type": "B", "@id": "B/2", "a": "bar"},
        {"@type": "B", "@id": "B/3", "a": "baz"},
        {"@type": "Holder", "@id": "Holder/h", "b": ["B/2", "B/3"], "a": "B/2"},
    ]
    reply = admin_http.post(path, params=COMMIT, json=docs)
    assert reply.status_code == 200, reply.text
    return fresh_db


def _migrate(http: httpx.Client, db: str, operations: list) -> httpx.Response:
    return http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": operations})


def _docs(http: httpx.Client, db: str) -> dict[str, dict]:
    return {d["@id"]: d for d in http.get(f"/api/document/admin/{db}", params={"as_list": "true"}).json()}


def test_random_to_lexical_regenerates_ids_and_rewrites_links(admin_http: httpx.Client, db: str) -> None:
    reply = _migrate(admin_http, db, [{"@type": "ChangeKey", "class": "B", "key": "Lexical", "fields": ["a"]}])
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "@type": "api:MigrationResponse",
        "api:status": "api:success",
        "schema_operations": 1,
        "instance_operations": 2,  # direct instances of B only
    }
    docs = _docs(admin_http, db)
    assert set(docs) == {"A/1", "B/bar", "B/baz", "Holder/h"}
    assert docs["B/bar"] == {"@id": "B/bar", "@type": "B", "a": "bar"}
    assert sorted(docs["Holder/h"]["b"]) == ["B/bar", "B/baz"]
    assert docs["Holder/h"]["a"] == "B/bar"
    schema = admin_http.get(f"/api/document/admin/{db}", params={"graph_type": "schema", "id": "B"}).json()
    assert schema["@key"] == {"@type": "Lexical", "@fields": ["a"]}
    # new documents of B now get Lexical ids
    new = admin_http.post(f"/api/document/admin/{db}", params=COMMIT, json=[{"@type": "B", "a": "qux"}])
    assert new.json() == ["terminusdb:///data/B/qux"]


def test_random_to_random_reinserts_with_fresh_random_ids(admin_http: httpx.Client, db: str) -> None:
    reply = _migrate(admin_http, db, [{"@type": "ChangeKey", "class": "B", "key": "Random"}])
    assert reply.status_code == 200, reply.text
    assert reply.json()["instance_operations"] == 2
    docs = _docs(admin_http, db)
    b_ids = sorted(i for i in docs if i.startswith("B/"))
    assert len(b_ids) == 2 and all(re.fullmatch(r"B/[A-Za-z0-9_-]{16}", i) for i in b_ids)
    assert sorted(docs[i]["a"] for i in b_ids) == ["bar", "baz"]
    assert sorted(docs["Holder/h"]["b"]) == b_ids
    assert docs["A/1"] == {"@id": "A/1", "@type": "A", "a": "foo"}


def test_key_change_onto_the_same_id_is_500(admin_http: httpx.Client, db: str) -> None:
    path = f"/api/document/admin/{db}"
    assert admin_http.post(path, params=COMMIT, json=[{"@type": "B", "@id": "B/4", "a": "bar"}]).status_code == 200
    reply = _migrate(admin_http, db, [{"@type": "ChangeKey", "class": "B", "key": "Lexical", "fields": ["a"]}])
    assert reply.status_code == 500
    assert reply.json()["@type"] == "api:UnhandledErrorResponse"
    assert "B/2" in _docs(admin_http, db)  # nothing changed


@pytest.mark.parametrize(
    "op",
    [
        {"@type": "ChangeKey", "class": "Nope", "key": "Random"},
        {"@type": "ChangeKey", "class": "B", "key": "Sequential"},
    ],
)
def test_unknown_class_or_key_type_is_500_as_in_terminusdb(admin_http: httpx.Client, db: str, op: dict) -> None:
    reply = _migrate(admin_http, db, [op])
    assert reply.status_code == 500
    assert reply.json()["@type"] == "api:UnhandledErrorResponse"


def test_change_key_with_extra_keys_is_a_bad_operation(admin_http: httpx.Client, db: str) -> None:
    op = {"@type": "ChangeKey", "class": "B", "key": "Random", "extra": 1}
    reply = _migrate(admin_http, db, [op])
    assert reply.status_code == 400
    assert reply.json()["api:error"] == {"@type": "api:UnknownSchemaMigrationOperation", "api:operation": op}
