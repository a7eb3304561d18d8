"""``/api/migration``, ``/api/log``, ``/api/history``, ``/api/branch`` and ``/api/reset``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

COMMIT = {"author": "tester", "message": "test"}
PERSON = {"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"}
ADD_NICK = {
    "@type": "CreateClassProperty",
    "class": "Person",
    "property": "nick",
    "type": "xsd:string",
    "default": "none",
}


@pytest.fixture
def db(admin_http: httpx.Client, fresh_db: str) -> str:
    base = f"/api/document/admin/{fresh_db}"
    assert admin_http.post(base, params={**COMMIT, "graph_type": "schema"}, json=PERSON).status_code == 200
    people = [{"@type": "Person", "name": n} for n in ("Ann", "Bob")]
    assert admin_http.post(base, params={**COMMIT, "message": "people"}, json=people).status_code == 200
    return fresh_db


def body_error(reply: httpx.Response, status: int, envelope: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.json()["@type"] == envelope
    return reply.json()["api:error"]


def test_migration_applies_and_records_operations(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": [ADD_NICK]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "@type": "api:MigrationResponse",
        "api:status": "api:success",
        "schema_operations": 1,
        "instance_operations": 2,
    }
    assert "terminusdb-data-version" not in reply.headers
    docs = admin_http.get(f"/api/document/admin/{db}", params={"as_list": "true"}).json()
    assert {d["nick"] for d in docs} == {"none"}
    head = admin_http.get(f"/api/log/admin/{db}").json()[0]
    assert head["migration"] == [ADD_NICK]
    assert head["message"] == "test"


def test_migration_dry_run_verbose_and_query_params(admin_http: httpx.Client, db: str) -> None:
    before = admin_http.get(f"/api/log/admin/{db}").json()
    reply = admin_http.post(
        f"/api/migration/admin/{db}",
        params={**COMMIT, "operations": json.dumps([ADD_NICK]), "dry_run": "true", "verbose": "true"},
    )
    assert reply.status_code == 200, reply.text
    schema = reply.json()["schema"]
    assert schema[0]["@type"] == "@context"
    assert schema[1]["nick"] == "xsd:string"
    assert admin_http.get(f"/api/log/admin/{db}").json() == before


def test_migration_parameter_errors(admin_http: httpx.Client, db: str) -> None:
    no_author = admin_http.post(f"/api/migration/admin/{db}", json={"message": "m", "operations": []})
    assert body_error(no_author, 400, "api:MigrationErrorResponse") == {
        "@type": "api:MissingParameter",
        "api:parameter": "author",
    }
    no_ops = admin_http.post(f"/api/migration/admin/{db}", json=COMMIT)
    assert body_error(no_ops, 400, "api:MigrationErrorResponse")["api:parameter"] == "operations"
    unknown = admin_http.post("/api/migration/admin/no_such_db", json={**COMMIT, "operations": []})
    assert body_error(unknown, 404, "api:MigrationErrorResponse")["@type"] == "api:UnknownDatabase"
    empty = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": []})
    assert empty.json()["schema_operations"] == 0


def test_migration_operation_failures(admin_http: httpx.Client, db: str) -> None:
    again = {"@type": "CreateClassProperty", "class": "Person", "property": "name", "type": "xsd:string"}
    failed = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": [again]})
    err = body_error(failed, 400, "api:MigrationErrorResponse")
    assert err["@type"] == "api:SchemaOperationFailed"
    required = {"@type": "CreateClassProperty", "class": "Person", "property": "x", "type": "xsd:string"}
    unhandled = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": [required]})
    assert unhandled.status_code == 500
    assert unhandled.json()["@type"] == "api:UnhandledErrorResponse"
    bogus = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": [{"@type": "Bogus"}]})
    assert body_error(bogus, 400, "api:MigrationErrorResponse")["@type"] == "api:UnknownSchemaMigrationOperation"


def test_migration_target_mode_replays_branch_migrations(admin_http: httpx.Client, db: str) -> None:
    assert admin_http.post(f"/api/branch/admin/{db}/local/branch/dev", json={"origin": "main"}).status_code == 200
    dev = admin_http.post(f"/api/migration/admin/{db}/local/branch/dev", json={**COMMIT, "operations": [ADD_NICK]})
    assert dev.status_code == 200, dev.text
    replay = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "target": f"admin/{db}/local/branch/dev"})
    assert replay.status_code == 200, replay.text
    assert replay.json()["schema_operations"] == 1
    nothing = admin_http.post(f"/api/migration/admin/{db}", json={**COMMIT, "target": f"admin/{db}/local/branch/dev"})
    assert nothing.json()["schema_operations"] == 0


def test_log_paging_and_errors(admin_http: httpx.Client, db: str) -> None:
    log = admin_http.get(f"/api/log/admin/{db}").json()
    assert [c["message"] for c in log] == ["people", "test"]
    assert log[0]["parent"] == f"ValidCommit/{log[1]['identifier']}"
    assert "parent" not in log[1]
    assert "instance" not in log[1]
    assert isinstance(log[0]["timestamp"], float)
    assert log[0]["user"] == "terminusdb://system/data/User/admin"
    assert admin_http.get(f"/api/log/admin/{db}", params={"start": "1", "count": "1"}).json() == log[1:]
    from_commit = admin_http.get(f"/api/log/admin/{db}/local/commit/{log[1]['identifier']}").json()
    assert from_commit == log[1:]
    no_history = admin_http.get(f"/api/log/admin/{db}/local/_commits")
    assert body_error(no_history, 400, "api:LogErrorResponse")["@type"] == "api:ResourceHasNoHistory"
    unknown = admin_http.get("/api/log/admin/no_such_db")
    assert body_error(unknown, 404, "api:LogErrorResponse")["@type"] == "api:UnknownDatabase"


def test_history(admin_http: httpx.Client, db: str) -> None:
    base = f"/api/document/admin/{db}"
    admin_http.delete(base, params={**COMMIT, "message": "bye", "id": "Person/Bob"})
    history = admin_http.get(f"/api/history/admin/{db}", params={"id": "Person/Bob"}).json()
    assert [h["message"] for h in history] == ["bye", "people"]
    assert set(history[0]) == {"identifier", "author", "message", "timestamp", "user"}
    both = admin_http.get(
        f"/api/history/admin/{db}", params={"id": "Person/Bob", "created": "true", "updated": "true"}
    ).json()
    assert both["created"]["message"] == "people"
    assert both["updated"]["message"] == "bye"
    with_diff = admin_http.get(f"/api/history/admin/{db}", params={"id": "Person/Bob", "diff": "true"}).json()
    assert with_diff[1]["diff"]["@op"] == "Insert"
    python_bool = admin_http.get(f"/api/history/admin/{db}", params={"id": "Person/Bob", "created": "True"})
    assert body_error(python_bool, 400, "api:HistoryErrorResponse")["@type"] == "api:BadParameterType"
    missing = admin_http.get(f"/api/history/admin/{db}")
    assert body_error(missing, 400, "api:HistoryErrorResponse") == {
        "@type": "api:MissingParameter",
        "api:parameter": "id",
    }


def test_branch_create_variants_and_errors(admin_http: httpx.Client, db: str) -> None:
    branch = f"/api/branch/admin/{db}/local/branch"
    ok = {"@type": "api:BranchResponse", "api:status": "api:success"}
    assert admin_http.post(f"{branch}/a", json={"origin": f"/admin/{db}/local/branch/main"}).json() == ok
    first = admin_http.get(f"/api/log/admin/{db}").json()[-1]["identifier"]
    assert admin_http.post(f"{branch}/b", json={"origin": f"admin/{db}/local/commit/{first}"}).json() == ok
    assert admin_http.post(f"{branch}/empty", json={}).json() == ok
    empty_log = admin_http.get(f"/api/log/admin/{db}/local/branch/empty").json()
    assert [c["@type"] for c in empty_log] == ["InitialCommit"]
    docs_b = admin_http.get(f"/api/document/admin/{db}/local/branch/b", params={"as_list": "true"}).json()
    assert docs_b == []
    listing = admin_http.get(f"/api/db/admin/{db}", params={"branches": "true"}).json()
    assert listing["branches"] == ["a", "b", "empty", "main"]
    exists = admin_http.post(f"{branch}/a", json={"origin": "main"})
    assert body_error(exists, 400, "api:BranchErrorResponse") == {
        "@type": "api:BranchExistsError",
        "api:branch_name": "a",
    }
    no_origin = admin_http.post(f"{branch}/c", json={"origin": "nope"})
    assert body_error(no_origin, 400, "api:BranchErrorResponse")["@type"] == "api:OriginBranchDoesNotExist"
    commits = admin_http.post(f"{branch}/c", json={"origin": f"admin/{db}/local/_commits"})
    assert body_error(commits, 400, "api:BranchErrorResponse")["@type"] == "api:NotASourceBranchDescriptorError"
    other_db = admin_http.post(f"{branch}/c", json={"origin": "admin/no_such_db/local/branch/main"})
    assert body_error(other_db, 400, "api:BranchErrorResponse")["@type"] == "api:UnknownOriginDatabase"
    bad_target = admin_http.post("/api/branch/unknowndesc", json={})
    assert body_error(bad_target, 400, "api:BranchErrorResponse")["@type"] == "api:BadTargetAbsoluteDescriptor"
    no_body = admin_http.post(f"{branch}/c")
    assert no_body.status_code == 400
    assert no_body.json()["@type"] == "api:BadAPIDocumentErrorResponse"


def test_branch_delete(admin_http: httpx.Client, db: str) -> None:
    branch = f"/api/branch/admin/{db}/local/branch"
    admin_http.post(f"{branch}/dev", json={"origin": "main"})
    assert admin_http.delete(f"{branch}/dev").status_code == 200
    gone = admin_http.delete(f"{branch}/dev")
    assert body_error(gone, 400, "api:BranchErrorResponse") == {
        "@type": "api:BranchDoesNotExistError",
        "api:branch_name": "dev",
    }
    main = admin_http.delete(f"{branch}/main")
    assert body_error(main, 400, "api:BranchErrorResponse")["@type"] == "api:BranchMainDeletionError"


def test_reset(admin_http: httpx.Client, db: str) -> None:
    log = admin_http.get(f"/api/log/admin/{db}").json()
    reset = f"/api/reset/admin/{db}/local/branch/main"
    first = log[-1]["identifier"]
    reply = admin_http.post(reset, json={"commit_descriptor": first})
    assert reply.json() == {"@type": "api:ResetResponse", "api:status": "api:success"}
    assert admin_http.get(f"/api/log/admin/{db}").json() == log[-1:]
    back = admin_http.post(reset, json={"commit_descriptor": f"admin/{db}/local/commit/{log[0]['identifier']}"})
    assert back.status_code == 200
    assert len(admin_http.get(f"/api/document/admin/{db}", params={"as_list": "true"}).json()) == 2
    unknown = admin_http.post(reset, json={"commit_descriptor": "0" * 31})
    assert body_error(unknown, 400, "api:ResetErrorResponse")["@type"] == "api:UnresolvableCommitId"
    not_commit = admin_http.post(reset, json={"commit_descriptor": f"admin/{db}/local/branch/main"})
    assert body_error(not_commit, 400, "api:ResetErrorResponse")["@type"] == "api:NotACommitDescriptorError"
    missing = admin_http.post(reset, json={})
    assert missing.json()["@type"] == "api:BadAPIDocumentErrorResponse"
    not_branch = admin_http.post(f"/api/reset/admin/{db}/local/commit/{first}", json={"commit_descriptor": first})
    assert body_error(not_branch, 400, "api:ResetErrorResponse")["@type"] == "api:NotABranchDescriptorError"
