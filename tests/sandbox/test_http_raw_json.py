"""Schemaless JSON documents (``raw_json=true``): stored as ``sys:JSONDocument``, read back, and reset."""

from __future__ import annotations

import httpx

COMMIT = {"author": "tester", "message": "test"}
SCHEMA = [{"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"}]


def _documents(admin_http: httpx.Client, db: str) -> list[dict]:
    reply = admin_http.get(f"/api/document/admin/{db}", params={"as_list": "true"})
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def _head(admin_http: httpx.Client, db: str) -> str:
    return str(admin_http.get(f"/api/log/admin/{db}").json()[0]["identifier"])


def test_raw_json_documents_round_trip_next_to_typed_ones(admin_http: httpx.Client, fresh_db: str) -> None:
    path = f"/api/document/admin/{fresh_db}"
    assert admin_http.post(path, params={**COMMIT, "graph_type": "schema"}, json=SCHEMA).status_code == 200
    reply = admin_http.post(
        path, params={**COMMIT, "raw_json": "true"}, json=[{"text": "test1"}, {"n": [1, {"x": None}]}]
    )
    assert reply.status_code == 200, reply.text
    ids = reply.json()
    assert len(ids) == 2 and all(i.startswith("terminusdb:///data/JSONDocument/") for i in ids)
    assert admin_http.post(path, params=COMMIT, json=[{"@type": "Person", "name": "Ann"}]).status_code == 200
    docs = {d["@id"]: d for d in _documents(admin_http, fresh_db)}
    short = [i.removeprefix("terminusdb:///data/") for i in ids]
    assert docs[short[0]] == {"@id": short[0], "text": "test1"}
    assert docs[short[1]] == {"@id": short[1], "n": [1, {"x": None}]}
    assert docs["Person/Ann"] == {"@id": "Person/Ann", "@type": "Person", "name": "Ann"}
    one = admin_http.get(path, params={"id": short[0]})
    assert one.status_code == 200 and one.json() == {"@id": short[0], "text": "test1"}
    # a schema change re-checks typed instances only
    extended = [{**SCHEMA[0], "age": {"@type": "Optional", "@class": "xsd:integer"}}]
    assert admin_http.put(path, params={**COMMIT, "graph_type": "schema"}, json=extended).status_code == 200


def test_reset_to_an_earlier_commit_leaves_exactly_the_earlier_raw_documents(
    admin_http: httpx.Client, fresh_db: str
) -> None:
    path = f"/api/document/admin/{fresh_db}"
    first = admin_http.post(path, params={**COMMIT, "raw_json": "true"}, json=[{"text": "test1"}])
    assert first.status_code == 200, first.text
    earlier = _head(admin_http, fresh_db)
    assert admin_http.post(path, params={**COMMIT, "raw_json": "true"}, json=[{"text": "test2"}]).status_code == 200
    assert sorted(d["text"] for d in _documents(admin_http, fresh_db)) == ["test1", "test2"]
    reset = admin_http.post(
        f"/api/reset/admin/{fresh_db}/local/branch/main",
        json={"commit_descriptor": f"admin/{fresh_db}/local/commit/{earlier}"},
    )
    assert reset.status_code == 200, reset.text
    assert [d["text"] for d in _documents(admin_http, fresh_db)] == ["test1"]


def test_raw_json_into_the_schema_graph_is_refused(admin_http: httpx.Client, fresh_db: str) -> None:
    reply = admin_http.post(
        f"/api/document/admin/{fresh_db}",
        params={**COMMIT, "raw_json": "true", "graph_type": "schema"},
        json=[{"text": "x"}],
    )
    assert reply.status_code == 400
    assert reply.json()["api:error"] == {"@type": "api:DocumentInsertionRawJSONSchemaDisallowed"}


def test_raw_json_document_must_be_an_object(admin_http: httpx.Client, fresh_db: str) -> None:
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params={**COMMIT, "raw_json": "true"}, json=[[1]])
    assert reply.status_code == 400
    assert _documents(admin_http, fresh_db) == []
