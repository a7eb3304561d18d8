"""Schema/instance semantics driven through the sandbox's HTTP API (spec §3.6/§3.7)."""

from __future__ import annotations

import httpx

COMMIT = {"author": "tester", "message": "test"}


def _put_schema(http: httpx.Client, db: str, docs: list[dict]) -> httpx.Response:
    return http.put(f"/api/document/admin/{db}", params={**COMMIT, "graph_type": "schema", "create": "true"}, json=docs)


def test_adding_required_property_to_class_with_instances_fails(admin_http: httpx.Client, fresh_db: str) -> None:
    assert _put_schema(admin_http, fresh_db, [{"@type": "Class", "@id": "Thing"}]).status_code == 200
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json={"@type": "Thing", "@id": "Thing/0"})
    assert reply.status_code == 200, reply.text
    reply = _put_schema(admin_http, fresh_db, [{"@type": "Class", "@id": "Thing", "name": "xsd:string"}])
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json; charset=UTF-8"
    body = reply.json()
    assert body.pop("api:request_id")
    assert body == {
        "@type": "api:ReplaceDocumentErrorResponse",
        "api:status": "api:failure",
        "api:message": "Schema check failure",
        "api:error": {
            "@type": "api:SchemaCheckFailure",
            "api:witnesses": [
                {
                    "@type": "instance_not_cardinality_one",
                    "class": "http://www.w3.org/2001/XMLSchema#string",
                    "instance": "terminusdb:///data/Thing/0",
                    "predicate": "terminusdb:///schema#name",
                }
            ],
        },
    }


def test_optional_property_via_put_records_migration(admin_http: httpx.Client, fresh_db: str) -> None:
    assert _put_schema(admin_http, fresh_db, [{"@type": "Class", "@id": "Thing"}]).status_code == 200
    admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json={"@type": "Thing", "@id": "Thing/0"})
    optional = {"@type": "Optional", "@class": "xsd:string"}
    reply = _put_schema(admin_http, fresh_db, [{"@type": "Class", "@id": "Thing", "note": optional}])
    assert reply.status_code == 200, reply.text
    log = admin_http.get(f"/api/log/admin/{fresh_db}").json()
    assert log[0]["migration"] == [
        {"@type": "CreateClassProperty", "class": "Thing", "property": "note", "type": optional}
    ]


def test_instance_witness_over_http(admin_http: httpx.Client, fresh_db: str) -> None:
    assert _put_schema(admin_http, fresh_db, [{"@type": "Class", "@id": "T", "a": "xsd:integer"}]).status_code == 200
    reply = admin_http.post(f"/api/document/admin/{fresh_db}", params=COMMIT, json={"@type": "T", "a": "abc"})
    assert reply.status_code == 400
    assert reply.json()["api:error"]["api:witnesses"] == [
        {
            "terminusdb:///schema#a": {
                "@type": "could_not_interpret_as_type",
                "value": "abc",
                "type": "http://www.w3.org/2001/XMLSchema#integer",
            }
        }
    ]
    reply = admin_http.post(
        f"/api/document/admin/{fresh_db}", params=COMMIT, json={"@type": "T", "@id": "T/1", "a": "61"}
    )
    assert reply.json() == ["terminusdb:///data/T/1"]
    got = admin_http.get(f"/api/document/admin/{fresh_db}", params={"id": "T/1"}).json()
    assert got == {"@id": "T/1", "@type": "T", "a": 61}
