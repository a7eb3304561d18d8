"""Fidelity details of the HTTP surface that clients observe: content-type checks, data versions on reads,
chunked document streams, exact error fields of the db/branch/reset endpoints, squash, expanded ids."""

from __future__ import annotations

import json
import re
import uuid

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
        "friend": {"@type": "Optional", "@class": "Person"},
        "pets": {"@type": "Set", "@class": "Pet"},
    },
    {"@type": "Class", "@id": "Pet", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"},
]


@pytest.fixture
def db(admin_http: httpx.Client, fresh_db: str) -> str:
    schema = admin_http.post(f"/api/document/admin/{fresh_db}", params={**COMMIT, "graph_type": "schema"}, json=SCHEMA)
    assert schema.status_code == 200, schema.text
    docs = [
        {"@type": "Pet", "name": "Rex"},
        {"@type": "Person", "name": "Ann"},
        {"@type": "Person", "name": "Bob", "friend": "Person/Ann", "pets": ["Pet/Rex"]},
    ]
    inserted = admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json=docs)
    assert inserted.status_code == 200, inserted.text
    return fresh_db


def _random() -> str:
    return "r" + uuid.uuid4().hex[:10]


# ------------------------------------------------------------------------------------------ section 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/db/{org}/{db}"),
        ("POST", "/api/document/{org}/{db}"),
        ("PUT", "/api/document/{org}/{db}"),
    ],
)
def test_missing_content_type_is_refused_before_anything_else(sandbox: SandboxServer, method: str, path: str) -> None:
    url = sandbox.url + path.format(org=_random(), db=_random())
    reply = httpx.request(method, url, auth=("admin", "root"))
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json; charset=UTF-8"
    body = reply.json()
    assert body["@type"] == "api:MissingContentTypeErrorResponse"
    assert body["api:status"] == "api:failure"


def test_non_json_content_type_is_refused(admin_http: httpx.Client, fresh_db: str) -> None:
    reply = admin_http.post(
        f"/api/document/admin/{fresh_db}", params=COMMIT, content=b"[]", headers={"Content-Type": "text/plain"}
    )
    assert reply.status_code == 400
    assert reply.json()["@type"] == "api:BadContentTypeErrorResponse"


@pytest.mark.parametrize("path", ["/api", "/api/abc", "/api/prefixes", "/api/squash", "/api/migration"])
def test_paths_without_handler_are_404(admin_http: httpx.Client, path: str) -> None:
    reply = admin_http.get(path)
    assert reply.status_code == 404
    assert reply.json() == {"api:status": "api:not_found", "api:path": path, "api:message": f"Path not found: {path}"}


@pytest.mark.parametrize(("method", "path"), [("PUT", "/api/ok"), ("PUT", "/api/db/x/y"), ("PUT", "/api/reset/")])
def test_known_routes_with_other_methods_are_405(admin_http: httpx.Client, method: str, path: str) -> None:
    reply = admin_http.request(method, path)
    assert reply.status_code == 405
    assert reply.headers["content-type"].startswith("application/json")


def test_reads_check_the_requested_data_version(admin_http: httpx.Client, db: str) -> None:
    url = f"/api/document/admin/{db}"
    actual = admin_http.head(url).headers["terminusdb-data-version"]
    assert admin_http.get(url, headers={"TerminusDB-Data-Version": actual}).status_code == 200
    stale = "branch:" + "0" * 31
    for reply in (
        admin_http.get(url, headers={"TerminusDB-Data-Version": stale}),
        admin_http.get(url, params={"graph_type": "schema"}, headers={"TerminusDB-Data-Version": stale}),
    ):
        assert reply.status_code == 400
        assert reply.json()["@type"] == "api:GetDocumentErrorResponse"
        assert reply.json()["api:error"] == {
            "@type": "api:DataVersionMismatch",
            "api:requested_data_version": stale,
            "api:actual_data_version": actual,
        }
    head = admin_http.head(url, headers={"TerminusDB-Data-Version": stale})
    assert head.status_code == 400
    bad = admin_http.get(url, headers={"TerminusDB-Data-Version": "lab:value"})
    assert bad.status_code == 400
    assert bad.json()["api:error"] == {"@type": "api:BadDataVersion", "api:data_version": "lab:value"}
    assert bad.json()["api:message"] == "Bad data version: lab:value"


def test_layer_ids_and_system_data_version_have_terminusdb_format(admin_http: httpx.Client, db: str) -> None:
    log = admin_http.get(f"/api/log/admin/{db}").json()
    assert re.fullmatch(r"layer_data:Layer_[0-9a-f]{40}", log[0]["schema"])
    assert re.fullmatch(r"layer_data:Layer_[0-9a-f]{40}", log[0]["instance"])
    repo = admin_http.get(f"/api/document/admin/{db}/local/_commits", params={"type": "Branch"})
    assert re.fullmatch(r"repo:[0-9a-f]{40}", repo.headers["terminusdb-data-version"])
    system = admin_http.head("/api/document/_system").headers["terminusdb-data-version"]
    assert re.fullmatch(r"system:[0-9a-f]{40}/[0-9a-f]{40}", system)


# ------------------------------------------------------------------------------------------ section 2


def test_database_name_errors_have_terminusdb_fields(admin_http: httpx.Client) -> None:
    long_name = "x" * 242
    too_long = admin_http.post(f"/api/db/admin/{long_name}", json={"label": "x"})
    assert too_long.status_code == 400
    assert too_long.json()["api:error"] == {
        "@type": "api:DatabaseNameTooLong",
        "api:organization_name": "admin",
        "api:database_value": long_name,
    }
    fits = "y" * 241
    assert admin_http.post(f"/api/db/admin/{fits}", json={"label": "x"}).status_code == 200
    assert admin_http.delete(f"/api/db/admin/{fits}").status_code == 200
    invalid = admin_http.post("/api/db/admin/a%7Cb", json={"label": "x"})
    assert invalid.json()["api:error"] == {"@type": "api:InvalidDatabaseName", "api:database_name": "a|b"}
    assert invalid.json()["api:message"] == "Invalid database name: 'a|b'"


# ------------------------------------------------------------------------------------------ section 3


def test_document_stream_is_chunked_and_lists_are_not(admin_http: httpx.Client, db: str) -> None:
    stream = admin_http.get(f"/api/document/admin/{db}", params={"type": "Person"})
    assert stream.headers["content-type"] == "application/json; stream=true; charset=UTF-8"
    assert stream.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in stream.headers
    assert [json.loads(line)["name"] for line in stream.text.splitlines()] == ["Ann", "Bob"]
    listed = admin_http.get(f"/api/document/admin/{db}", params={"type": "Person", "as_list": "true"})
    assert listed.headers["content-type"] == "application/json; charset=UTF-8"
    assert "transfer-encoding" not in listed.headers
    empty = admin_http.get(f"/api/document/admin/{db}", params={"type": "Nothing"})
    assert empty.status_code == 200
    assert empty.content == b""


def test_compress_ids_false_expands_reference_values(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.get(f"/api/document/admin/{db}", params={"id": "Person/Bob", "compress_ids": "false"})
    assert json.loads(reply.text) == {
        "@id": "terminusdb:///data/Person/Bob",
        "@type": "terminusdb:///schema#Person",
        "terminusdb:///schema#name": "Bob",
        "terminusdb:///schema#friend": "terminusdb:///data/Person/Ann",
        "terminusdb:///schema#pets": ["terminusdb:///data/Pet/Rex"],
    }


def test_submitted_id_errors_carry_only_the_ids(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.post(
        f"/api/document/admin/{db}", params=COMMIT, json={"@type": "Pet", "@id": "Pet/Other", "name": "Max"}
    )
    assert reply.status_code == 400
    assert reply.json()["api:error"] == {
        "@type": "api:SubmittedIdDoesNotMatchGeneratedId",
        "api:submitted_id": "terminusdb:///data/Pet/Other",
        "api:generated_id": "terminusdb:///data/Pet/Max",
    }


def test_at_prefixed_schema_key_is_mapped_on_post_but_500_on_put(admin_http: httpx.Client, db: str) -> None:
    doc = {"@type": "Class", "@id": "Pet", "@lifecycle": "x", "name": "xsd:string"}
    params = {**COMMIT, "graph_type": "schema"}
    posted = admin_http.post(f"/api/document/admin/{db}", params=params, json=doc)
    assert posted.status_code == 400
    assert posted.json()["api:error"]["@type"] == "api:AtPrefixedPropertiesNotSupported"
    replaced = admin_http.put(f"/api/document/admin/{db}", params=params, json=doc)
    assert replaced.status_code == 500
    assert replaced.json()["@type"] == "api:UnhandledErrorResponse"


# ------------------------------------------------------------------------------------------ sections 5, 7


def test_reset_errors_have_terminusdb_fields(admin_http: httpx.Client, db: str) -> None:
    url = f"/api/reset/admin/{db}"

    def error(ref: str) -> dict[str, object]:
        reply = admin_http.post(url, json={"commit_descriptor": ref})
        assert reply.status_code == 400
        assert reply.json()["@type"] == "api:ResetErrorResponse"
        return dict(reply.json()["api:error"])

    assert error("a/b/c/d/e/f/g") == {"@type": "api:InvalidRefPath", "api:ref": "a/b/c/d/e/f/g"}
    assert error("nosuchcommit") == {"@type": "api:UnresolvableCommitId", "api:commit": "nosuchcommit"}
    assert error(f"admin/{db}/local/branch/main") == {
        "@type": "api:NotACommitDescriptorError",
        "api:absolute_descriptor": f"admin/{db}/local/branch/main",
    }
    assert error("admin/elsewhere/local/commit/abc") == {
        "@type": "api:DifferentRepositoriesError",
        "api:source_absolute_descriptor": f"admin/{db}/local/branch/main",
        "api:target_absolute_descriptor": "admin/elsewhere/local/commit/abc",
    }


def test_branch_error_messages(admin_http: httpx.Client, db: str) -> None:
    exists = admin_http.post(f"/api/branch/admin/{db}/local/branch/main", json={})
    assert exists.json()["api:message"] == "Branch main already exists"
    main = admin_http.delete(f"/api/branch/admin/{db}/local/branch/main")
    assert main.json()["api:message"] == "Branch 'main' should not be deleted as it is special"
    remote = admin_http.post(f"/api/branch/admin/{db}/origin/branch/dev", json={})
    assert remote.status_code == 400
    assert remote.json()["api:error"] == {
        "@type": "api:NotLocalRepositoryError",
        "api:absolute_descriptor": f"admin/{db}/origin/branch/dev",
    }


def test_squash_makes_a_parentless_commit_without_moving_the_branch(admin_http: httpx.Client, db: str) -> None:
    before = admin_http.get(f"/api/log/admin/{db}").json()
    reply = admin_http.post(f"/api/squash/admin/{db}", json={"commit_info": {"author": "sq", "message": "squash"}})
    assert reply.status_code == 200
    body = reply.json()
    assert body["@type"] == "api:SquashResponse"
    assert body["api:old_commit"] == f"admin/{db}/local/commit/{before[0]['identifier']}"
    assert re.fullmatch(rf"admin/{db}/local/commit/[0-9a-z]{{31}}", body["api:commit"])
    assert admin_http.get(f"/api/log/admin/{db}").json() == before
    squashed_log = admin_http.get(f"/api/log/{body['api:commit']}").json()
    assert len(squashed_log) == 1
    assert squashed_log[0]["author"] == "sq"
    assert "parent" not in squashed_log[0]
    people = admin_http.get(f"/api/document/{body['api:commit']}", params={"type": "Person", "as_list": "true"})
    assert [doc["name"] for doc in people.json()] == ["Ann", "Bob"]
    missing = admin_http.post(f"/api/squash/admin/{db}", json={})
    assert missing.status_code == 400
    assert missing.json()["@type"] == "api:BadAPIDocumentErrorResponse"
    not_branch = admin_http.post(f"/api/squash/admin/{db}/_meta", json={"commit_info": {}})
    assert not_branch.json()["api:error"]["@type"] == "api:NotABranchDescriptorError"


def test_migration_body_needs_json_content_type_but_query_only_calls_do_not(admin_http: httpx.Client, db: str) -> None:
    url = f"/api/migration/admin/{db}"
    untyped = admin_http.post(url, content=b'{"author":"a","message":"m","operations":[]}')
    assert untyped.status_code == 400
    assert untyped.json()["@type"] == "api:MissingContentTypeErrorResponse"
    query_only = admin_http.post(url, params={**COMMIT, "operations": "[]"})
    assert query_only.status_code == 200
    assert query_only.json()["schema_operations"] == 0
    assert "terminusdb-data-version" not in query_only.headers
