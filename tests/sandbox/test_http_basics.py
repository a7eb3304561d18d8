"""Liveness, info, connect, routing fallbacks, request-body rules and the /api/db endpoints."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import httpx

from sandbox.server import SandboxServer

JSON = "application/json; charset=UTF-8"


def test_ok_needs_no_auth_and_has_empty_body(sandbox: SandboxServer) -> None:
    reply = httpx.get(sandbox.url + "/api/ok", auth=("admin", "wrong"))
    assert reply.status_code == 200
    assert reply.content == b""
    assert reply.headers["content-length"] == "0"


def test_info_for_admin_and_anonymous(sandbox: SandboxServer, admin_http: httpx.Client) -> None:
    body = admin_http.get("/api/info").json()
    assert body["@type"] == "api:InfoResponse"
    assert body["api:status"] == "api:success"
    assert body["api:info"]["authority"] == "terminusdb://system/data/User/admin"
    assert body["api:info"]["terminusdb"]["version"] == "12.0.6"
    anonymous = httpx.get(sandbox.url + "/api/info").json()
    assert anonymous["api:info"]["authority"] == "terminusdb://system/data/User/anonymous"


def test_connect_lists_user_databases(sandbox: SandboxServer, admin_http: httpx.Client, fresh_db: str) -> None:
    records = admin_http.get("/api/").json()
    mine = [r for r in records if r["name"] == fresh_db]
    assert len(mine) == 1
    assert mine[0]["@type"] == "UserDatabase"
    assert mine[0]["@id"].startswith("UserDatabase/")
    assert mine[0]["state"] == "finalized"
    assert httpx.get(sandbox.url + "/api/").json() == []


def test_unknown_api_path_is_404_with_path(admin_http: httpx.Client) -> None:
    for path in ("/api/nothing", "/api/document", "/api/branch", "/api/reset"):
        reply = admin_http.get(path)
        assert reply.status_code == 404
        assert reply.headers["content-type"] == JSON
        assert reply.json() == {
            "api:status": "api:not_found",
            "api:path": path,
            "api:message": f"Path not found: {path}",
        }


def test_wrong_method_is_405(admin_http: httpx.Client) -> None:
    assert admin_http.post("/api/ok").status_code == 405
    assert admin_http.get("/api/reset/admin/x").status_code == 405
    assert admin_http.put("/api/migration/admin/x").status_code == 405


def test_options_answers_allowed_methods(admin_http: httpx.Client) -> None:
    reply = admin_http.options("/api/document/admin/x", headers={"Origin": "http://localhost"})
    assert reply.status_code == 200
    assert "POST" in reply.headers["allow"]
    assert reply.headers["access-control-allow-origin"] == "http://localhost"


def test_invalid_json_body_gets_generic_400(admin_http: httpx.Client) -> None:
    reply = admin_http.post(
        "/api/db/admin/whatever", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "api:status": "api:failure",
        "api:message": "Submitted object was not valid JSON",
        "system:object": "{not json",
    }


def test_duplicate_json_key_is_rejected(admin_http: httpx.Client) -> None:
    reply = admin_http.post(
        "/api/db/admin/dup", content=b'{"label": "a", "label": "b"}', headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json()["@type"] == "api:DuplicateField"


def test_gzip_and_deflate_request_bodies(admin_http: httpx.Client, make_db: Callable[..., str]) -> None:
    name = make_db()
    schema = b'[{"@type": "Class", "@id": "Thing", "label": "xsd:string"}]'
    reply = admin_http.post(
        f"/api/document/admin/{name}",
        params={"author": "a", "message": "m", "graph_type": "schema"},
        content=gzip.compress(schema),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == ["Thing"]
    reply = admin_http.post(
        f"/api/document/admin/{name}",
        params={"author": "a", "message": "m"},
        content=zlib.compress(b'{"@type": "Thing", "@id": "Thing/1", "label": "one"}'),
        headers={"Content-Type": "application/json", "Content-Encoding": "deflate"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == ["terminusdb:///data/Thing/1"]


# ------------------------------------------------------------------------------------------- /api/db


def test_create_database_reply_and_initial_commit(admin_http: httpx.Client, make_db: Callable[..., str]) -> None:
    name = make_db()
    log = admin_http.get(f"/api/log/admin/{name}").json()
    assert len(log) == 1
    assert log[0]["@type"] == "InitialCommit"
    assert log[0]["author"] == "system"
    assert log[0]["message"] == "create initial schema"
    assert len(log[0]["identifier"]) == 31
    reply = admin_http.post("/api/db/admin/created_here", json={"label": "L"})
    try:
        body = reply.json()
        assert body["@type"] == "api:DbCreateResponse"
        assert body["api:database_uri"].startswith("terminusdb://system/data/UserDatabase/")
    finally:
        admin_http.delete("/api/db/admin/created_here")


def test_create_database_errors(admin_http: httpx.Client, fresh_db: str) -> None:
    missing = admin_http.post("/api/db/admin/x_nolabel", json={})
    assert missing.status_code == 400
    assert missing.json()["@type"] == "api:DbCreateErrorResponse"
    assert missing.json()["api:error"] == {"@type": "api:MissingParameter", "api:parameter": "label"}
    assert missing.json()["api:message"] == "Missing parameter: label"
    exists = admin_http.post(f"/api/db/admin/{fresh_db}", json={"label": "x"})
    assert exists.status_code == 400
    assert exists.json()["api:error"]["@type"] == "api:DatabaseAlreadyExists"
    assert exists.json()["api:message"] == "Database already exists."
    org = admin_http.post("/api/db/nobody/x", json={"label": "x"})
    assert org.status_code == 404
    assert org.json()["api:status"] == "api:not_found"
    assert org.json()["api:error"] == {"@type": "api:UnknownOrganizationName", "api:organization_name": "nobody"}
    bad = admin_http.post("/api/db/admin/a%7Cb", json={"label": "x"})
    assert bad.json()["api:error"]["@type"] == "api:InvalidDatabaseName"
    too_long = admin_http.post("/api/db/admin/" + "x" * 242, json={"label": "x"})
    assert too_long.json()["api:error"]["@type"] == "api:DatabaseNameTooLong"
    prefix = admin_http.post("/api/db/admin/x_prefix", json={"label": "x", "prefixes": {"ex": "no-scheme"}})
    assert prefix.json()["api:error"]["@type"] == "api:InvalidPrefix"


def test_exists_list_get_and_delete(admin_http: httpx.Client, make_db: Callable[..., str]) -> None:
    name = make_db()
    assert admin_http.head(f"/api/db/admin/{name}", params={"exists": "true"}).status_code == 200
    assert admin_http.head("/api/db/admin/not_there").status_code == 404
    assert {"path": f"admin/{name}"} in admin_http.get("/api/db").json()
    single = admin_http.get(f"/api/db/admin/{name}", params={"branches": "true", "verbose": "true"}).json()
    assert single["path"] == f"admin/{name}"
    assert single["branches"] == ["main"]
    assert single["@type"] == "UserDatabase"
    missing = admin_http.get("/api/db/admin/not_there")
    assert missing.status_code == 404
    assert missing.json()["@type"] == "api:DbListErrorResponse"
    assert admin_http.delete(f"/api/db/admin/{name}").json() == {
        "@type": "api:DbDeleteResponse",
        "api:status": "api:success",
    }
    gone = admin_http.delete(f"/api/db/admin/{name}")
    assert gone.status_code == 404
    assert gone.json()["@type"] == "api:DbDeleteErrorResponse"
    assert gone.json()["api:error"] == {
        "@type": "api:UnknownDatabase",
        "api:database_name": name,
        "api:organization_name": "admin",
    }
    assert gone.json()["api:message"] == f"Unknown database: admin/{name}"


def test_prefixes(admin_http: httpx.Client, fresh_db: str) -> None:
    assert admin_http.get(f"/api/prefixes/admin/{fresh_db}").json() == {
        "@type": "Context",
        "@base": "terminusdb:///data/",
        "@schema": "terminusdb:///schema#",
    }


def test_sandbox_health(sandbox: SandboxServer) -> None:
    assert httpx.get(sandbox.url + "/_sandbox/health").json()["status"] == "ok"
