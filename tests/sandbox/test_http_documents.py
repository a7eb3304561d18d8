"""``/api/document``: reading (stream vs list, selection params) and writing (insert/replace/delete)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

STREAM = "application/json; stream=true; charset=UTF-8"
SCHEMA = [
    {"@type": "Class", "@id": "Animal", "@abstract": [], "name": "xsd:string"},
    {
        "@type": "Class",
        "@id": "Dog",
        "@inherits": "Animal",
        "@key": {"@type": "Lexical", "@fields": ["name"]},
        "owner": {"@type": "Optional", "@class": "Person"},
    },
    {"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"},
]
COMMIT = {"author": "tester", "message": "test"}


@pytest.fixture
def db(admin_http: httpx.Client, fresh_db: str) -> str:
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params={**COMMIT, "graph_type": "schema"}, json=SCHEMA)
    assert reply.status_code == 200, reply.text
    reply = admin_http.post(
        f"/api/document/admin/{fresh_db}",
        params=COMMIT,
        json=[
            {"@type": "Person", "name": "Ann"},
            {"@type": "Dog", "name": "Rex", "owner": "Person/Ann"},
            {"@type": "Dog", "name": "Fido"},
        ],
    )
    assert reply.status_code == 200, reply.text
    return fresh_db


def url(db: str, suffix: str = "") -> str:
    return f"/api/document/admin/{db}{suffix}"


def stream(reply: httpx.Response) -> list[Any]:
    assert reply.headers["content-type"] == STREAM
    return [json.loads(line) for line in reply.text.splitlines() if line.strip()]


def error(reply: httpx.Response, status: int, envelope: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json; charset=UTF-8"
    body = reply.json()
    assert body["@type"] == envelope
    assert "api:request_id" in body
    return body["api:error"]


def test_get_stream_list_and_single(admin_http: httpx.Client, db: str) -> None:
    docs = stream(admin_http.get(url(db)))
    assert [d["@id"] for d in docs] == ["Person/Ann", "Dog/Rex", "Dog/Fido"]
    listed = admin_http.get(url(db), params={"as_list": "true"})
    assert listed.headers["content-type"] == "application/json; charset=UTF-8"
    assert listed.json() == docs
    single = admin_http.get(url(db), params={"id": "Dog/Rex"})
    assert single.text.endswith("\n")
    assert stream(single) == [{"@id": "Dog/Rex", "@type": "Dog", "name": "Rex", "owner": "Person/Ann"}]
    assert admin_http.get(url(db), params={"id": "Dog/Nope", "as_list": "true"}).json() == []
    assert admin_http.get(url(db), params={"id": "terminusdb:///data/Dog/Rex", "as_list": "true"}).json()


def test_get_selection_params(admin_http: httpx.Client, db: str) -> None:
    by_type = stream(admin_http.get(url(db), params={"type": "Animal"}))
    assert {d["@id"] for d in by_type} == {"Dog/Rex", "Dog/Fido"}
    assert stream(admin_http.get(url(db), params={"type": "Unknown"})) == []
    page = admin_http.get(url(db), params={"skip": "1", "count": "1", "as_list": "true"}).json()
    assert [d["@id"] for d in page] == ["Dog/Rex"]
    ids = admin_http.get(url(db), params={"ids": '["Dog/Fido", "Person/Ann"]', "as_list": "true"}).json()
    assert [d["@id"] for d in ids] == ["Dog/Fido", "Person/Ann"]
    body_params = admin_http.request("GET", url(db), json={"id": "Person/Ann", "graph_type": "instance"})
    assert stream(body_params)[0]["name"] == "Ann"
    query = admin_http.post(
        url(db), headers={"X-HTTP-Method-Override": "GET"}, json={"query": {"@type": "Dog", "name": "Fido"}}
    )
    assert [d["@id"] for d in stream(query)] == ["Dog/Fido"]
    pretty = admin_http.get(url(db), params={"id": "Person/Ann", "minimized": "false"})
    assert "\n    " in pretty.text
    expanded = stream(admin_http.get(url(db), params={"id": "Person/Ann", "compress_ids": "false"}))[0]
    assert expanded["@id"] == "terminusdb:///data/Person/Ann"
    assert expanded["terminusdb:///schema#name"] == "Ann"


def test_schema_graph_get(admin_http: httpx.Client, db: str) -> None:
    docs = stream(admin_http.get(url(db), params={"graph_type": "schema"}))
    assert docs[0] == {"@type": "@context", "@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
    assert [d["@id"] for d in docs[1:]] == ["Animal", "Dog", "Person"]
    context = stream(admin_http.get(url(db), params={"graph_type": "schema", "id": "@context"}))
    assert context == [docs[0]]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("as_list", "7", "boolean (true, false)"),
        ("as_list", "True", "boolean (true, false)"),
        ("graph_type", "both", "graph (schema, instance)"),
        ("skip", "-1", "non-negative integer"),
        ("count", "x", "non-negative integer"),
    ],
)
def test_get_bad_parameter_shapes(admin_http: httpx.Client, db: str, name: str, value: str, expected: str) -> None:
    reply = admin_http.get(url(db), params={name: value})
    assert error(reply, 400, "api:GetDocumentErrorResponse") == {
        "@type": "api:BadParameterType",
        "api:parameter": name,
        "api:expected_type": expected,
        "api:value": value,
    }
    assert reply.json()["api:message"] == f"Expected parameter '{name}' of type '{expected}` but found: '{value}'"


def test_json_body_booleans_must_be_json_booleans(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.request("GET", url(db), json={"as_list": "false"})
    assert error(reply, 400, "api:GetDocumentErrorResponse")["api:value"] == "false"


def test_get_not_found_shapes(admin_http: httpx.Client, db: str) -> None:
    assert error(admin_http.get(url(db), params={"id": "Dog/Nope"}), 404, "api:GetDocumentErrorResponse") == {
        "@type": "api:DocumentNotFound",
        "api:document_id": "Dog/Nope",
    }
    unknown = error(admin_http.get("/api/document/admin/no_such_db"), 404, "api:GetDocumentErrorResponse")
    assert unknown == {
        "@type": "api:UnknownDatabase",
        "api:database_name": "no_such_db",
        "api:organization_name": "admin",
    }
    branch = error(admin_http.get(url(db, "/local/branch/nope")), 404, "api:GetDocumentErrorResponse")
    assert branch == {
        "@type": "api:UnresolvableAbsoluteDescriptor",
        "api:absolute_descriptor": f"admin/{db}/local/branch/nope",
    }


def test_data_version_header_and_concurrency(admin_http: httpx.Client, db: str) -> None:
    version = admin_http.get(url(db)).headers["terminusdb-data-version"]
    assert version.startswith("branch:")
    assert admin_http.head(url(db)).headers["terminusdb-data-version"] == version
    write = admin_http.post(
        url(db),
        params=COMMIT,
        headers={"TerminusDB-Data-Version": version},
        json={"@type": "Person", "name": "Bob"},
    )
    assert write.status_code == 200
    new_version = write.headers["terminusdb-data-version"]
    assert new_version != version
    stale = admin_http.post(
        url(db), params=COMMIT, headers={"TerminusDB-Data-Version": version}, json={"@type": "Person", "name": "Cy"}
    )
    assert error(stale, 400, "api:InsertDocumentErrorResponse") == {
        "@type": "api:DataVersionMismatch",
        "api:requested_data_version": version,
        "api:actual_data_version": new_version,
    }
    assert stale.json()["api:message"] == "Requested data version in header does not match actual data version."
    bad = admin_http.post(url(db), params=COMMIT, headers={"TerminusDB-Data-Version": "nocolon"}, json=[])
    assert error(bad, 400, "api:InsertDocumentErrorResponse") == {
        "@type": "api:BadDataVersion",
        "api:data_version": "nocolon",
    }
    unchanged = admin_http.put(url(db), params=COMMIT, json={"@type": "Person", "name": "Bob"})
    assert unchanged.headers["terminusdb-data-version"] == new_version


def test_commit_and_repo_data_versions(admin_http: httpx.Client, db: str) -> None:
    log = admin_http.get(f"/api/log/admin/{db}").json()
    commit = log[0]["identifier"]
    reply = admin_http.get(url(db, f"/local/commit/{commit}"))
    assert reply.headers["terminusdb-data-version"] == f"commit:{commit}"
    assert len(stream(reply)) == 3
    assert admin_http.get(url(db, "/local/_commits")).headers["terminusdb-data-version"].startswith("repo:")
    readonly = admin_http.post(url(db, f"/local/commit/{commit}"), params=COMMIT, json=[])
    assert error(readonly, 400, "api:InsertDocumentErrorResponse")["@type"] == "api:DocumentAccessImpossible"


def test_insert_errors(admin_http: httpx.Client, db: str) -> None:
    missing = admin_http.post(url(db), params={"author": "a"}, json=[])
    assert error(missing, 400, "api:InsertDocumentErrorResponse") == {
        "@type": "api:MissingParameter",
        "api:parameter": "message",
    }
    exists = admin_http.post(url(db), params=COMMIT, json={"@type": "Person", "name": "Ann"})
    assert error(exists, 400, "api:InsertDocumentErrorResponse") == {
        "@type": "api:DocumentIdAlreadyExists",
        "api:document_id": "terminusdb:///data/Person/Ann",
        "api:document": {"@type": "Person", "name": "Ann"},
    }
    twice = admin_http.post(url(db), params=COMMIT, json=[{"@type": "Person", "name": "Z"}] * 2)
    assert error(twice, 400, "api:InsertDocumentErrorResponse") == {
        "@type": "api:SameDocumentIdsMutatedInOneTransaction",
        "api:duplicate_ids": ["terminusdb:///data/Person/Z"],
    }
    merged = admin_http.post(
        url(db), params={**COMMIT, "merge_repeats": "true"}, json=[{"@type": "Person", "name": "Z"}] * 2
    )
    assert merged.json() == ["terminusdb:///data/Person/Z"]
    dangling = admin_http.post(url(db), params=COMMIT, json={"@type": "Dog", "name": "Max", "owner": "Person/Nobody"})
    assert error(dangling, 400, "api:InsertDocumentErrorResponse")["@type"] == "api:SchemaCheckFailure"


def test_overwrite_full_replace_and_empty_body(admin_http: httpx.Client, db: str) -> None:
    version = admin_http.head(url(db)).headers["terminusdb-data-version"]
    empty = admin_http.post(url(db), params=COMMIT, content=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 200
    assert empty.json() == []
    assert empty.headers["terminusdb-data-version"] == version
    over = admin_http.post(
        url(db), params={**COMMIT, "overwrite": "true"}, json={"@type": "Dog", "name": "Rex", "owner": "Person/Ann"}
    )
    assert over.status_code == 200
    full = admin_http.post(
        url(db), params={**COMMIT, "full_replace": "true"}, json=[{"@type": "Person", "name": "Solo"}]
    )
    assert full.status_code == 200, full.text
    assert [d["@id"] for d in stream(admin_http.get(url(db)))] == ["Person/Solo"]


def test_schema_context_rules(admin_http: httpx.Client, db: str) -> None:
    context = {"@type": "@context", "@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
    inserting = admin_http.post(url(db), params={**COMMIT, "graph_type": "schema"}, json=[context])
    assert error(inserting, 400, "api:InsertDocumentErrorResponse")["@type"] == "api:InsertingContext"
    no_context = admin_http.post(
        url(db), params={**COMMIT, "graph_type": "schema", "full_replace": "true"}, json=SCHEMA
    )
    assert error(no_context, 400, "api:InsertDocumentErrorResponse")["@type"] == "api:NoContextFoundInSchema"
    dup = admin_http.post(url(db), params={**COMMIT, "graph_type": "schema"}, json=[SCHEMA[2]])
    assert error(dup, 400, "api:InsertDocumentErrorResponse") == {
        "@type": "api:DocumentIdAlreadyExists",
        "api:document_id": "Person",
        "api:document": SCHEMA[2],
    }


def test_replace(admin_http: httpx.Client, db: str) -> None:
    new_dog = {"@id": "Dog/Fido", "@type": "Dog", "name": "Fido", "owner": "Person/Ann"}
    reply = admin_http.put(url(db), params=COMMIT, json=new_dog)
    assert reply.json() == ["terminusdb:///data/Dog/Fido"]
    assert stream(admin_http.get(url(db), params={"id": "Dog/Fido"})) == [new_dog]
    missing = admin_http.put(url(db), params=COMMIT, json={"@type": "Person", "name": "New"})
    assert error(missing, 404, "api:ReplaceDocumentErrorResponse") == {
        "@type": "api:DocumentNotFound",
        "api:document_id": "terminusdb:///data/Person/New",
        "api:document": {"@type": "Person", "name": "New"},
    }
    created = admin_http.put(url(db), params={**COMMIT, "create": "true"}, json={"@type": "Person", "name": "New"})
    assert created.status_code == 200
    schema_missing = admin_http.put(
        url(db), params={**COMMIT, "graph_type": "schema"}, json={"@type": "Class", "@id": "Cat", "name": "xsd:string"}
    )
    assert error(schema_missing, 404, "api:ReplaceDocumentErrorResponse")["api:document_id"] == "Cat"


def test_required_property_on_populated_class_is_rejected(admin_http: httpx.Client, db: str) -> None:
    person = {**SCHEMA[2], "email": "xsd:string"}
    reply = admin_http.put(url(db), params={**COMMIT, "graph_type": "schema"}, json=person)
    witnesses = error(reply, 400, "api:ReplaceDocumentErrorResponse")["api:witnesses"]
    assert witnesses[0]["@type"] == "instance_not_cardinality_one"
    assert reply.json()["api:message"] == "Schema check failure"


def test_optional_property_records_inferred_migration(admin_http: httpx.Client, db: str) -> None:
    person = {**SCHEMA[2], "email": {"@type": "Optional", "@class": "xsd:string"}}
    reply = admin_http.put(url(db), params={**COMMIT, "graph_type": "schema"}, json=person)
    assert reply.status_code == 200, reply.text
    migration = admin_http.get(f"/api/log/admin/{db}", params={"count": "1"}).json()[0]["migration"]
    assert migration[0]["@type"] == "CreateClassProperty"


def test_delete_variants(admin_http: httpx.Client, db: str) -> None:
    missing_targets = admin_http.delete(url(db), params=COMMIT)
    assert error(missing_targets, 400, "api:DeleteDocumentErrorResponse") == {"@type": "api:MissingTargets"}
    assert missing_targets.json()["api:message"] == "Missing target(s) for deletion"
    referenced = admin_http.delete(url(db), params={**COMMIT, "id": "Person/Ann"})
    assert error(referenced, 400, "api:DeleteDocumentErrorResponse")["@type"] == "api:SchemaCheckFailure"
    one = admin_http.delete(url(db), params={**COMMIT, "id": "Dog/Fido"})
    assert one.status_code == 204
    assert one.content == b""
    assert one.headers["terminusdb-data-version"].startswith("branch:")
    unknown = admin_http.delete(url(db), params={**COMMIT, "id": "Dog/Fido"})
    assert error(unknown, 404, "api:DeleteDocumentErrorResponse") == {
        "@type": "api:DocumentNotFound",
        "api:document_id": "terminusdb:///data/Dog/Fido",
    }
    body = admin_http.request("DELETE", url(db), params=COMMIT, json=["Dog/Rex", "Person/Ann"])
    assert body.status_code == 204
    assert stream(admin_http.get(url(db))) == []


def test_delete_by_type_and_nuke(admin_http: httpx.Client, db: str) -> None:
    assert admin_http.delete(url(db), params={**COMMIT, "type": "Animal"}).status_code == 204
    assert [d["@id"] for d in stream(admin_http.get(url(db)))] == ["Person/Ann"]
    assert admin_http.delete(url(db), params={**COMMIT, "nuke": "true"}).status_code == 204
    assert stream(admin_http.get(url(db))) == []
    schema_delete = admin_http.delete(url(db), params={**COMMIT, "graph_type": "schema", "id": "Nope"})
    assert error(schema_delete, 404, "api:DeleteDocumentErrorResponse") == {
        "@type": "api:DocumentNotFound",
        "api:document_id": "Nope",
    }


def test_commits_graph_lists_branches(admin_http: httpx.Client, db: str) -> None:
    branches = stream(admin_http.get(url(db, "/local/_commits"), params={"type": "Branch"}))
    head = admin_http.get(f"/api/log/admin/{db}").json()[0]["identifier"]
    assert branches == [{"@id": "Branch/main", "@type": "Branch", "head": f"ValidCommit/{head}", "name": "main"}]
