"""Bad parameters of document GET and DELETE: 400 ``api:BadParameterType`` with the value as TerminusDB
parsed it (query-string ``true``/``false``/``null`` are the JSON literals), and nothing read or deleted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer

COMMIT = {"author": "tester", "message": "test"}
SCHEMA = [{"@type": "Class", "@id": "Person", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"}]
NON_EMPTY = "non-empty string"
BOOLEAN = "boolean (true, false)"
NON_NEGATIVE = "non-negative integer"
GRAPH = "graph (schema, instance)"


def _populate(http: httpx.Client, name: str) -> None:
    path = f"/api/document/admin/{name}"
    assert http.post(path, params={**COMMIT, "graph_type": "schema"}, json=SCHEMA).status_code == 200
    assert http.post(path, params=COMMIT, json=[{"@type": "Person", "name": "Ann"}]).status_code == 200


@pytest.fixture(scope="module")
def db(sandbox: SandboxServer) -> Iterator[str]:
    """Shared by the tests that change nothing (each asserts that ``Person/Ann`` is still there)."""
    name = f"params_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=sandbox.url, auth=("admin", "root"), timeout=30) as http:
        assert http.post(f"/api/db/admin/{name}", json={"label": name}).status_code == 200
        _populate(http, name)
        yield name
        http.delete(f"/api/db/admin/{name}")


@pytest.fixture
def own_db(admin_http: httpx.Client, fresh_db: str) -> str:
    """A database of the test's own, for the tests that write."""
    _populate(admin_http, fresh_db)
    return fresh_db


def _assert_bad_parameter(reply: httpx.Response, envelope: str, name: str, expected: str, value: Any) -> None:
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["@type"] == envelope
    assert body["api:status"] == "api:failure"
    assert body["api:error"] == {
        "@type": "api:BadParameterType",
        "api:parameter": name,
        "api:expected_type": expected,
        "api:value": value,
    }
    assert body["api:message"].startswith(f"Expected parameter '{name}' of type '{expected}")


@pytest.mark.parametrize(
    ("query", "body", "name", "expected", "value"),
    [
        ("id=", None, "id", NON_EMPTY, ""),
        ("type=", None, "type", NON_EMPTY, ""),
        (None, '{"id":""}', "id", NON_EMPTY, ""),
        (None, '{"id":null}', "id", NON_EMPTY, None),
        (None, '{"id":true}', "id", NON_EMPTY, True),
        (None, '{"id":7}', "id", NON_EMPTY, 7),
        (None, '{"type":19}', "type", NON_EMPTY, 19),
        (None, '{"type":false}', "type", NON_EMPTY, False),
        ("as_list=7", None, "as_list", BOOLEAN, "7"),
        (None, '{"as_list":"wrong"}', "as_list", BOOLEAN, "wrong"),
        ("compress_ids=null", None, "compress_ids", BOOLEAN, None),
        ("unfold=", None, "unfold", BOOLEAN, ""),
        (None, '{"unfold":"false"}', "unfold", BOOLEAN, "false"),
        (None, '{"minimized":0}', "minimized", BOOLEAN, 0),
        ("skip=true", None, "skip", NON_NEGATIVE, True),
        ("skip=false", None, "skip", NON_NEGATIVE, False),
        (None, '{"skip":[]}', "skip", NON_NEGATIVE, []),
        (None, '{"skip":-1000}', "skip", NON_NEGATIVE, -1000),
        ("count=%20", None, "count", NON_NEGATIVE, " "),
        ("count=-1", None, "count", NON_NEGATIVE, "-1"),
        (None, '{"count":{}}', "count", NON_NEGATIVE, {}),
        (None, '{"query":null}', "query", "object", None),
        (None, '{"query":82}', "query", "object", 82),
        ("graph_type=bla", None, "graph_type", GRAPH, "bla"),
        (None, '{"graph_type":null}', "graph_type", GRAPH, None),
    ],
)
def test_get_bad_parameter(
    admin_http: httpx.Client, db: str, query: str | None, body: str | None, name: str, expected: str, value: Any
) -> None:
    url = f"/api/document/admin/{db}" + (f"?{query}" if query else "")
    headers = {"Content-Type": "application/json"} if body else {}
    reply = admin_http.request("GET", url, content=body.encode() if body else None, headers=headers)
    _assert_bad_parameter(reply, "api:GetDocumentErrorResponse", name, expected, value)


def test_get_with_valid_id_still_works(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.get(f"/api/document/admin/{db}", params={"id": "Person/Ann"})
    assert reply.status_code == 200
    assert reply.json() == {"@id": "Person/Ann", "@type": "Person", "name": "Ann"}
    by_body = admin_http.request("GET", f"/api/document/admin/{db}", json={"type": "Person", "as_list": True})
    assert by_body.json() == [{"@id": "Person/Ann", "@type": "Person", "name": "Ann"}]


@pytest.mark.parametrize(
    ("query", "body", "value"),
    [
        ("id=", None, ""),
        ("type=", None, ""),
        (None, "0", 0),
        (None, "null", None),
        (None, "[false]", False),
        (None, "[true]", True),
        (None, '["", "Person/Ann"]', ""),
        (None, '"" "Person/Ann"', ""),
        (None, '{"@id": "Person/Ann"}', {"@id": "Person/Ann"}),
        (None, '[["Person/Ann"]]', ["Person/Ann"]),
    ],
)
def test_delete_bad_target_deletes_nothing(
    admin_http: httpx.Client, db: str, query: str | None, body: str | None, value: Any
) -> None:
    url = f"/api/document/admin/{db}?author=tester&message=test" + (f"&{query}" if query else "")
    headers = {"Content-Type": "application/json"} if body else {}
    reply = admin_http.request("DELETE", url, content=body.encode() if body else None, headers=headers)
    _assert_bad_parameter(
        reply, "api:DeleteDocumentErrorResponse", "id" if query != "type=" else "type", NON_EMPTY, value
    )
    assert admin_http.get(f"/api/document/admin/{db}", params={"id": "Person/Ann"}).status_code == 200


@pytest.mark.parametrize(
    ("query", "name", "expected", "value"),
    [
        ("author=", "author", NON_EMPTY, ""),
        ("author=a&message=", "message", NON_EMPTY, ""),
        ("author=a&message=m&graph_type=0", "graph_type", GRAPH, "0"),
        ("author=a&message=m&graph_type=null", "graph_type", GRAPH, None),
        ("author=a&message=m&nuke=null", "nuke", BOOLEAN, None),
        ("author=a&message=m&nuke=abc", "nuke", BOOLEAN, "abc"),
    ],
)
def test_delete_bad_flag(admin_http: httpx.Client, db: str, query: str, name: str, expected: str, value: Any) -> None:
    reply = admin_http.request("DELETE", f"/api/document/admin/{db}?{query}", content=b'["Person/Ann"]')
    _assert_bad_parameter(reply, "api:DeleteDocumentErrorResponse", name, expected, value)
    assert admin_http.get(f"/api/document/admin/{db}", params={"id": "Person/Ann"}).status_code == 200


def test_delete_of_valid_ids_still_works(admin_http: httpx.Client, own_db: str) -> None:
    reply = admin_http.request("DELETE", f"/api/document/admin/{own_db}", params=COMMIT, content=b'"Person/Ann"')
    assert reply.status_code == 204
    assert admin_http.get(f"/api/document/admin/{own_db}", params={"id": "Person/Ann"}).status_code == 404


def test_delete_without_target_is_missing_targets(admin_http: httpx.Client, db: str) -> None:
    reply = admin_http.request("DELETE", f"/api/document/admin/{db}", params=COMMIT)
    assert reply.status_code == 400
    assert reply.json()["api:error"] == {"@type": "api:MissingTargets"}
