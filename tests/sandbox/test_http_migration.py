"""``/api/migration`` driven over HTTP (spec §4)."""

from __future__ import annotations

import json

import httpx
import pytest

COMMIT = {"author": "tester", "message": "migrate"}
UNHANDLED = {
    "@type": "api:UnhandledErrorResponse",
    "api:status": "api:server_error",
    "api:message": "An internal server error occurred. Please contact the administrator.",
    "api:error": {"@type": "api:InternalServerError"},
}


@pytest.fixture
def db(admin_http: httpx.Client, fresh_db: str) -> str:
    schema = [
        {"@type": "Class", "@id": "Animal", "name": "xsd:string"},
        {"@type": "Class", "@id": "Dog", "@inherits": "Animal"},
    ]
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params={**COMMIT, "graph_type": "schema"}, json=schema)
    assert reply.status_code == 200, reply.text
    docs = [{"@type": "Animal", "@id": "Animal/a", "name": "A"}, {"@type": "Dog", "@id": "Dog/d", "name": "D"}]
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json=docs)
    assert reply.status_code == 200, reply.text
    return fresh_db


def _migrate(http: httpx.Client, db: str, operations: list) -> httpx.Response:
    return http.post(f"/api/migration/admin/{db}", json={**COMMIT, "operations": operations})


def test_create_property_with_default(admin_http: httpx.Client, db: str) -> None:
    ops = [
        {"@type": "CreateClassProperty", "class": "Animal", "property": "by", "type": "xsd:string", "default": "sys"}
    ]
    reply = _migrate(admin_http, db, ops)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "@type": "api:MigrationResponse",
        "api:status": "api:success",
        "schema_operations": 1,
        "instance_operations": 2,
    }
    dog = admin_http.get(f"/api/document/admin/{db}", params={"id": "Dog/d"}).json()
    assert dog["by"] == "sys"
    assert admin_http.get(f"/api/log/admin/{db}").json()[0]["migration"] == ops


def test_create_optional_property_without_default(admin_http: httpx.Client, db: str) -> None:
    ops = [
        {
            "@type": "CreateClassProperty",
            "class": "Animal",
            "property": "n",
            "type": {"@type": "Optional", "@class": "xsd:string"},
        }
    ]
    reply = _migrate(admin_http, db, ops)
    assert reply.status_code == 200 and reply.json()["instance_operations"] == 0


@pytest.mark.parametrize(
    "op",
    [
        {"@type": "CreateClassProperty", "class": "Animal", "property": "req", "type": "xsd:string"},
        {
            "@type": "CreateClassProperty",
            "class": "Dog",
            "property": "name",
            "type": {"@type": "Optional", "@class": "xsd:string"},
        },
    ],
)
def test_unmapped_failures_are_500(admin_http: httpx.Client, db: str, op: dict) -> None:
    reply = _migrate(admin_http, db, [op])
    assert reply.status_code == 500
    assert reply.json() == UNHANDLED


def test_schema_operation_failed_shape(admin_http: httpx.Client, db: str) -> None:
    op = {"@type": "CreateClassProperty", "class": "Animal", "property": "name", "type": "xsd:string", "default": "x"}
    reply = _migrate(admin_http, db, [op])
    assert reply.status_code == 400
    body = reply.json()
    assert body["@type"] == "api:MigrationErrorResponse"
    err = body["api:error"]
    assert err["@type"] == "api:SchemaOperationFailed"
    assert json.loads(err["api:schema_operation"]) == op
    assert set(err["api:schema"]) == {"@context", "Animal", "Dog"}
    assert (
        body["api:message"] == f"The schema operation '{err['api:schema_operation']}' failed and could not be performed"
    )


def test_bad_operation_shape(admin_http: httpx.Client, db: str) -> None:
    op = {"@type": "DeleteClass", "class": "Dog", "extra": True}
    reply = _migrate(admin_http, db, [op])
    assert reply.status_code == 400
    assert reply.json()["api:error"] == {"@type": "api:UnknownSchemaMigrationOperation", "api:operation": op}
