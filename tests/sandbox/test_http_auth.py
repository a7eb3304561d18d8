"""Authentication (401 shape, bearer tokens, anonymous) and per-database authorisation (403 shape)."""

from __future__ import annotations

import httpx
import pytest

from sandbox.server import SandboxServer

UNAUTHORISED = {
    "@type": "api:ErrorResponse",
    "api:status": "api:failure",
    "api:error": {"@type": "api:IncorrectAuthenticationError"},
    "api:message": "Incorrect authentication information",
}
SCHEMA = {"@type": "Class", "@id": "Note", "text": "xsd:string"}
COMMIT = {"author": "a", "message": "m"}


@pytest.fixture
def populated(admin_http: httpx.Client, fresh_db: str) -> str:
    base = f"/api/document/admin/{fresh_db}"
    assert admin_http.post(base, params={**COMMIT, "graph_type": "schema"}, json=SCHEMA).status_code == 200
    assert admin_http.post(base, params=COMMIT, json={"@type": "Note", "@id": "Note/1", "text": "x"}).status_code == 200
    return fresh_db


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic YWRtaW46d3Jvbmc="},  # admin:wrong
        {"Authorization": "Basic bm9ib2R5OnJvb3Q="},  # nobody:root
        {"Authorization": "Bearer not-a-known-token"},
    ],
)
def test_bad_credentials_are_401(sandbox: SandboxServer, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/api/"), ("POST", "/api/db/admin/x"), ("GET", "/api/info")):
        reply = httpx.request(method, sandbox.url + path, headers=headers, json={"label": "x"})
        assert reply.status_code == 401
        assert reply.json() == UNAUTHORISED


def test_anonymous_gets_403_but_unknown_db_404_first(sandbox: SandboxServer, populated: str) -> None:
    for headers in ({}, {"Authorization": "Token some-api-token"}):
        reply = httpx.get(f"{sandbox.url}/api/document/admin/{populated}", headers=headers)
        assert reply.status_code == 403
        body = reply.json()
        assert body["api:status"] == "api:forbidden"
        assert body["auth"] == "terminusdb://system/data/User/anonymous"
        assert "@type" not in body
        assert body["api:message"].startswith("Access to ")
        assert httpx.head(f"{sandbox.url}/api/db/admin/{populated}", headers=headers).status_code == 403
    unknown = httpx.get(f"{sandbox.url}/api/document/admin/no_such_db")
    assert unknown.status_code == 404
    assert unknown.json()["api:error"]["@type"] == "api:UnknownDatabase"


def test_reader_token_reads_but_cannot_write(sandbox: SandboxServer, populated: str) -> None:
    headers = {"Authorization": "Bearer reader-token"}
    base = f"{sandbox.url}/api/document/admin/{populated}"
    assert httpx.get(base, headers=headers, params={"as_list": "true"}).json()[0]["@id"] == "Note/1"
    write = httpx.post(base, headers=headers, params=COMMIT, json={"@type": "Note", "@id": "Note/2", "text": "y"})
    assert write.status_code == 403
    assert write.json()["api:status"] == "api:forbidden"


def test_writer_token_writes_instances_but_not_schema(sandbox: SandboxServer, populated: str) -> None:
    headers = {"Authorization": "Bearer writer-token"}
    base = f"{sandbox.url}/api/document/admin/{populated}"
    ok = httpx.post(base, headers=headers, params=COMMIT, json={"@type": "Note", "@id": "Note/2", "text": "y"})
    assert ok.status_code == 200, ok.text
    log = httpx.get(f"{sandbox.url}/api/log/admin/{populated}", headers=headers).json()
    assert log[0]["user"] == "terminusdb://system/data/User/writer"
    schema = httpx.put(
        base,
        headers=headers,
        params={**COMMIT, "graph_type": "schema"},
        json={**SCHEMA, "extra": {"@type": "Optional", "@class": "xsd:string"}},
    )
    assert schema.status_code == 403
    assert set(schema.json()) == {"api:status", "api:message", "auth", "action", "scope"}
    migration = httpx.post(
        f"{sandbox.url}/api/migration/admin/{populated}",
        headers=headers,
        json={**COMMIT, "operations": [{"@type": "DeleteClassProperty", "class": "Note", "property": "text"}]},
    )
    assert migration.status_code == 403
    assert migration.json()["api:status"] == "api:forbidden"


def test_admin_password_is_configurable() -> None:
    with SandboxServer(admin_password="s3cret") as server:
        assert httpx.get(server.url + "/api/", auth=("admin", "s3cret")).status_code == 200
        denied = httpx.get(server.url + "/api/", auth=("admin", "root"))
        assert denied.status_code == 401
        assert "s3cret" not in denied.text
