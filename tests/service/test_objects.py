"""The guide's "Test Write Operations" over HTTP, and every bad input a writer can send."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from tests.conftest import ADMIN_AUTH
from tests.iam_issuer import LocalIssuer
from tests.service.conftest import Deployment, bearer


def stored(sandbox: SandboxServer, database: str, doc_id: str) -> dict[str, Any] | None:
    reply = httpx.get(
        f"{sandbox.url}/api/document/admin/{database}", params={"id": doc_id}, auth=ADMIN_AUTH, timeout=30
    )
    return reply.json() if reply.status_code == 200 else None


def commit_log(sandbox: SandboxServer, database: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{sandbox.url}/api/log/admin/{database}", auth=ADMIN_AUTH, timeout=30)
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def audit_events(shared: Deployment, token: str, **params: Any) -> list[dict[str, Any]]:
    reply = shared.client.get("/api/v1/audit/logs", params={"limit": 1000, **params}, headers=bearer(token))
    assert reply.status_code == 200, reply.text
    return list(reply.json()["events"])


def test_guide_write_is_stamped_with_the_verified_user(
    shared: Deployment, iam_server: LocalIssuer, sandbox: SandboxServer
) -> None:
    alice = iam_server.token("u-123", username="alice")
    body = {"name": "test", "type": "ObjectType", "_created_by": "mallory", "_created_at": "1999-01-01T00:00:00Z"}
    reply = shared.client.post("/api/v1/objects", json=body, headers=bearer(alice))
    assert reply.status_code == 201, reply.text
    answer = reply.json()
    assert answer["@id"] == "ObjectType/test"
    document = stored(sandbox, shared.database, "ObjectType/test")
    assert document is not None
    assert document["_created_by"] == "u-123"
    assert document["_created_by_username"] == "alice"
    assert document["_created_at"].startswith(time.strftime("%Y-", time.gmtime()))
    assert document["_updated_by"] == "u-123"
    assert answer["_created_by"] == "u-123"
    assert commit_log(sandbox, shared.database)[0]["author"] == "u-123"

    # update by another user: _created_* kept whatever the client sends, _updated_* set
    bob = iam_server.token("u-456", username="bob")
    reply = shared.client.put(
        "/api/v1/objects/ObjectType/test",
        json={"name": "test", "description": "changed", "_created_by": "bob-forged", "_updated_by": "nobody"},
        headers=bearer(bob),
    )
    assert reply.status_code == 200, reply.text
    document = stored(sandbox, shared.database, "ObjectType/test")
    assert document is not None
    assert (document["_created_by"], document["_created_by_username"]) == ("u-123", "alice")
    assert (document["_updated_by"], document["_updated_by_username"]) == ("u-456", "bob")
    assert document["description"] == "changed"
    assert document["_updated_at"] >= document["_created_at"]
    assert commit_log(sandbox, shared.database)[0]["author"] == "u-456"

    # both events are in the audit trail, read with the header it needs
    events = audit_events(shared, iam_server.service_token(), resource_type="ObjectType")
    mine = [(e["action"], e["actor"]["id"], e["success"]) for e in events if e["resource_id"] == "ObjectType/test"]
    assert ("create", "u-123", True) in mine
    assert ("update", "u-456", True) in mine


def test_read_and_delete_are_author_tracked(
    shared: Deployment, iam_server: LocalIssuer, sandbox: SandboxServer
) -> None:
    token = iam_server.token("u-777", username="carol")
    assert (
        shared.client.post(
            "/api/v1/objects", json={"@type": "LinkType", "name": "gone"}, headers=bearer(token)
        ).status_code
        == 201
    )
    reply = shared.client.get("/api/v1/objects/LinkType/gone", headers=bearer(token))
    assert reply.status_code == 200 and reply.json()["_created_by"] == "u-777"
    assert shared.client.delete("/api/v1/objects/LinkType/gone", headers=bearer(token)).status_code == 200
    assert stored(sandbox, shared.database, "LinkType/gone") is None
    assert commit_log(sandbox, shared.database)[0]["author"] == "u-777"
    reply = shared.client.get("/api/v1/objects/LinkType/gone", headers=bearer(token))
    assert reply.status_code == 404 and "does not exist" in reply.json()["message"]
    events = audit_events(shared, iam_server.service_token(), actor="u-777")
    assert {e["action"] for e in events} >= {"create", "delete"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Authorization header"),
        ({"Authorization": "Bearer garbage"}, "malformed"),
        ({"Authorization": "Basic YWRtaW46cm9vdA=="}, "not 'Bearer"),
    ],
)
def test_missing_or_garbled_token_is_401_with_the_reason(
    shared: Deployment, headers: dict[str, str], reason: str
) -> None:
    reply = shared.client.post("/api/v1/objects", json={"@type": "ObjectType", "name": "x"}, headers=headers)
    assert reply.status_code == 401
    assert reason in reply.json()["reason"]
    assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_expired_token_is_401_and_the_denial_is_audited_without_the_token(
    shared: Deployment, iam_server: LocalIssuer
) -> None:
    expired = iam_server.token("u-900", expires_in=-3600)
    reply = shared.client.post("/api/v1/objects", json={"@type": "ObjectType", "name": "late"}, headers=bearer(expired))
    assert reply.status_code == 401
    assert "expired" in reply.json()["reason"]
    denied = [
        e
        for e in audit_events(shared, iam_server.service_token())
        if e["action"] == "write_denied" and "expired" in e["details"].get("reason", "")
    ]
    assert denied and denied[0]["success"] is False and denied[0]["actor"]["kind"] == "anonymous"
    assert expired not in json.dumps(denied)
    assert expired not in shared.service.log()


def test_audit_logs_are_not_public(shared: Deployment, iam_server: LocalIssuer) -> None:
    assert shared.client.get("/api/v1/audit/logs?limit=10").status_code == 401
    user = shared.client.get("/api/v1/audit/logs?limit=10", headers=bearer(iam_server.token("u-1")))
    assert user.status_code == 403 and "audit:read" in user.json()["message"]
    reader = iam_server.token("u-2", roles=["user", "audit:read"])
    assert shared.client.get("/api/v1/audit/logs?limit=10", headers=bearer(reader)).status_code == 200


def test_audit_logs_page_with_a_cursor(shared: Deployment, iam_server: LocalIssuer) -> None:
    token = iam_server.token("u-pager")
    for index in range(3):
        body = {"@type": "ObjectType", "name": f"page-{index}"}
        assert shared.client.post("/api/v1/objects", json=body, headers=bearer(token)).status_code == 201
    service = iam_server.service_token()
    first = shared.client.get(
        "/api/v1/audit/logs", params={"limit": 2, "actor": "u-pager"}, headers=bearer(service)
    ).json()
    assert first["count"] == 2 and first["next_cursor"]
    second = shared.client.get(
        "/api/v1/audit/logs",
        params={"limit": 2, "actor": "u-pager", "cursor": first["next_cursor"]},
        headers=bearer(service),
    ).json()
    ids = [e["event_id"] for e in first["events"] + second["events"]]
    assert len(ids) == len(set(ids)) == 3
    future = shared.client.get(
        "/api/v1/audit/logs", params={"limit": 5, "since": "2999-01-01T00:00:00Z"}, headers=bearer(service)
    ).json()
    assert future["events"] == []


def test_verify_service_account(shared: Deployment, iam_server: LocalIssuer) -> None:
    reply = shared.client.get("/api/v1/iam/verify-service-account", headers=bearer(iam_server.service_token()))
    assert reply.status_code == 200
    assert reply.json()["principal"]["service_name"] == "deployment"
    user = shared.client.get("/api/v1/iam/verify-service-account", headers=bearer(iam_server.token()))
    assert user.status_code == 403
    forged = iam_server.token("svc_x", roles=["user"], type="service", service_account=True)
    assert shared.client.get("/api/v1/iam/verify-service-account", headers=bearer(forged)).status_code == 401


def _raw_post(shared: Deployment, token: str, content: bytes, content_type: str = "application/json") -> httpx.Response:
    return shared.client.post(
        "/api/v1/objects", content=content, headers={**bearer(token), "Content-Type": content_type}
    )


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b'{"name": "x", "type": "ObjectType"', 400, "not valid JSON"),
        (b'[{"@type": "ObjectType", "name": "x"}]', 400, "not an object"),
        (b"", 400, "empty"),
        (b'{"name": "x"}', 400, "which class"),
        (b'{"@type": "NoSuchClass", "name": "x"}', 400, "class 'NoSuchClass' does not exist"),
        (b'{"@type": "Plain", "name": "x"}', 400, "run the audit-fields migration first"),
        (b'{"@type": "ObjectType", "@id": "LinkType/x", "name": "x"}', 400, "not an id of class"),
        (b'{"@type": "ObjectType", "name": 42}', 400, "field 'name': 42 is not a valid xsd:string"),
    ],
)
def test_bad_documents(
    shared: Deployment, iam_server: LocalIssuer, sandbox: SandboxServer, content: bytes, status: int, words: str
) -> None:
    reply = _raw_post(shared, iam_server.token(), content)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["message"]
    assert stored(sandbox, shared.database, "ObjectType/x") is None


def test_update_with_an_id_of_another_type(shared: Deployment, iam_server: LocalIssuer) -> None:
    token = iam_server.token()
    assert (
        shared.client.post(
            "/api/v1/objects", json={"@type": "ObjectType", "name": "typed"}, headers=bearer(token)
        ).status_code
        == 201
    )
    reply = shared.client.put(
        "/api/v1/objects/ObjectType/typed", json={"@type": "LinkType", "name": "typed"}, headers=bearer(token)
    )
    assert reply.status_code == 400 and "not an id of class 'LinkType'" in reply.json()["message"]
    missing = shared.client.put("/api/v1/objects/ObjectType/nobody", json={"name": "nobody"}, headers=bearer(token))
    assert missing.status_code == 404


def test_oversized_body_is_413(shared: Deployment, iam_server: LocalIssuer) -> None:
    big = json.dumps({"@type": "ObjectType", "name": "big", "description": "x" * (2 * 1024 * 1024)}).encode()
    reply = _raw_post(shared, iam_server.token(), big)
    assert reply.status_code == 413
    assert "OMS_AUDIT_MAX_BODY_BYTES" in reply.json()["message"]


def test_iam_down_is_503_with_retry_after(shared: Deployment, iam_server: LocalIssuer) -> None:
    token = iam_server.token()
    try:
        for mode in ("5xx", "malformed"):
            iam_server.mode = mode
            reply = shared.client.post(
                "/api/v1/objects", json={"@type": "ObjectType", "name": "iam"}, headers=bearer(token)
            )
            assert reply.status_code == 503, reply.text
            assert reply.headers["Retry-After"]
            assert reply.json()["error"] == "iam_unavailable"
    finally:
        iam_server.reset()


def test_terminusdb_failing_the_write_is_503_and_the_event_says_it_failed(
    shared: Deployment, iam_server: LocalIssuer, faults: Any, sandbox: SandboxServer
) -> None:
    faults(action="status", status=503, method="POST", path_prefix=f"/api/document/admin/{shared.database}", times=1)
    token = iam_server.token("u-unlucky")
    reply = shared.client.post("/api/v1/objects", json={"@type": "ObjectType", "name": "nope"}, headers=bearer(token))
    assert reply.status_code == 503 and reply.headers["Retry-After"]
    assert reply.json()["error"] == "terminusdb_unavailable"
    assert stored(sandbox, shared.database, "ObjectType/nope") is None
    events = audit_events(shared, iam_server.service_token(), actor="u-unlucky")
    assert [(e["action"], e["success"]) for e in events] == [("create", False)]


def test_terminusdb_slow_is_503(shared: Deployment, iam_server: LocalIssuer, faults: Any) -> None:
    faults(action="delay", seconds=5, method="POST", path_prefix=f"/api/document/admin/{shared.database}", times=1)
    reply = shared.client.post(
        "/api/v1/objects", json={"@type": "ObjectType", "name": "slow"}, headers=bearer(iam_server.token())
    )
    assert reply.status_code == 503
    assert "did not answer" in reply.json()["message"]


def test_health_and_readiness(shared: Deployment) -> None:
    assert shared.client.get("/healthz").json() == {"status": "ok"}
    ready = shared.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"terminusdb": "ok", "audit_sink": "ok", "dlq_dir": "ok"}
    unknown = shared.client.get("/api/v1/nothing")
    assert unknown.status_code == 404 and "README" in unknown.json()["message"]


def test_openapi_document_lists_every_endpoint(shared: Deployment, iam_server: LocalIssuer) -> None:
    paths = shared.client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/objects"]) == {"post"}
    assert set(paths["/api/v1/objects/{doc_id}"]) == {"get", "put", "delete"}
    assert paths["/api/v1/objects"]["post"]["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"
    assert {"/api/v1/audit/logs", "/api/v1/iam/verify-service-account", "/metrics", "/healthz", "/readyz"} <= set(paths)
    # the write routes bypass FastAPI's validation layer: a method they do not serve is still 405, not 404
    reply = shared.client.patch("/api/v1/objects/ObjectType/x", json={}, headers=bearer(iam_server.token("u-1")))
    assert reply.status_code == 405
