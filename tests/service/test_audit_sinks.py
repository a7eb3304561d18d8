"""The sink the service is configured with is the one it checks and reads: the metadata database, or the
HTTP backend of ``AUDIT_BACKEND_URL``. ``/readyz`` checks that sink; the audit-log filters reach it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from tests.iam_issuer import LocalIssuer
from tests.servers import AuditBackend, serving
from tests.service.conftest import Deployment, bearer, drop_database


@pytest.fixture
def backend() -> Iterator[AuditBackend]:
    server = AuditBackend()
    with serving(server):
        yield server


def _write(deployment: Deployment, token: str, name: str, doc_type: str = "ObjectType") -> None:
    reply = deployment.client.post("/api/v1/objects", json={"@type": doc_type, "name": name}, headers=bearer(token))
    assert reply.status_code == 201, reply.text


def _pages(deployment: Deployment, token: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of the audit log for ``params``, following the cursor to the end."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        reply = deployment.client.get("/api/v1/audit/logs", params=query, headers=bearer(token))
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["count"] == len(body["events"]) <= params["limit"]
        pages.append(body["events"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ended"


def _check_filters(deployment: Deployment, iam: LocalIssuer) -> list[dict[str, Any]]:
    """7 writes by two users on two classes; each filter, alone and together, with pages of 2."""
    ann, ben = iam.token("u-ann", username="ann"), iam.token("u-ben", username="ben")
    for index in range(4):
        _write(deployment, ann, f"ann-{index}")
    _write(deployment, ben, "ben-0")
    _write(deployment, ben, "ben-link", doc_type="LinkType")
    _write(deployment, ann, "ann-link", doc_type="LinkType")
    reader = iam.service_token()

    everything = [e for page in _pages(deployment, reader, limit=2) for e in page]
    writes = [e for e in everything if e["action"] == "create"]
    assert len(writes) == 7
    stamps = [(e["occurred_at"], e["event_id"]) for e in everything]
    assert stamps == sorted(stamps, reverse=True)  # newest first, across pages
    assert len({e["event_id"] for e in everything}) == len(everything)  # no event twice

    ann_pages = _pages(deployment, reader, limit=2, actor="u-ann")
    assert [len(p) for p in ann_pages] == [2, 2, 1]
    assert {e["resource_id"] for p in ann_pages for e in p} == {
        *(f"ObjectType/ann-{i}" for i in range(4)),
        "LinkType/ann-link",
    }
    links = [e for p in _pages(deployment, reader, limit=2, resource_type="LinkType") for e in p]
    assert {e["resource_id"] for e in links} == {"LinkType/ben-link", "LinkType/ann-link"}
    both = [e for p in _pages(deployment, reader, limit=5, actor="u-ben", resource_type="ObjectType") for e in p]
    assert [e["resource_id"] for e in both] == ["ObjectType/ben-0"]

    ben_link = next(e for e in writes if e["resource_id"] == "LinkType/ben-link")
    recent = [e for p in _pages(deployment, reader, limit=2, since=ben_link["occurred_at"]) for e in p]
    assert {e["resource_id"] for e in recent} >= {"LinkType/ben-link", "LinkType/ann-link"}
    assert all(e["occurred_at"] >= ben_link["occurred_at"] for e in recent)
    assert "ObjectType/ann-0" not in {e["resource_id"] for e in recent}
    return writes


def test_metadata_sink_filters_and_pages_the_audit_log(deploy: Callable[..., Deployment], iam: LocalIssuer) -> None:
    _check_filters(deploy(), iam)


def test_http_sink_gets_the_filters_and_the_cursor(
    deploy: Callable[..., Deployment], iam: LocalIssuer, backend: AuditBackend
) -> None:
    deployment = deploy(AUDIT_BACKEND_URL=backend.url)
    writes = _check_filters(deployment, iam)
    assert {e["event_id"] for e in writes} <= set(backend.events)  # the events went to the backend
    asked = backend.queries
    assert {"limit": "2", "actor": "u-ann"} in asked
    assert {"limit": "2", "resource_type": "LinkType"} in asked
    assert any(q.get("cursor") and q.get("actor") == "u-ann" for q in asked)
    assert any("since" in q for q in asked)


def test_readyz_checks_the_http_backend_not_the_metadata_database(
    deploy: Callable[..., Deployment], iam: LocalIssuer, backend: AuditBackend, sandbox: SandboxServer
) -> None:
    deployment = deploy(AUDIT_BACKEND_URL=backend.url)
    drop_database(sandbox, deployment.meta)  # not the sink here: its absence does not make the service unready
    ready = deployment.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["audit_sink"] == "ok"

    backend.fail_with = 503
    down = deployment.client.get("/readyz")
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert "AUDIT_BACKEND_URL" in down.json()["checks"]["audit_sink"]
    assert down.json()["checks"]["terminusdb"] == "ok" and down.json()["checks"]["dlq_dir"] == "ok"

    backend.fail_with = None
    backend.shutdown()  # nobody listening any more
    backend.server_close()
    gone = deployment.client.get("/readyz")
    assert gone.status_code == 503
    assert "AUDIT_BACKEND_URL" in gone.json()["checks"]["audit_sink"]


def test_readyz_checks_the_metadata_database_when_it_is_the_sink(
    deploy: Callable[..., Deployment], sandbox: SandboxServer
) -> None:
    deployment = deploy()
    assert deployment.client.get("/readyz").status_code == 200
    drop_database(sandbox, deployment.meta)
    ready = deployment.client.get("/readyz")
    assert ready.status_code == 503
    assert deployment.meta in ready.json()["checks"]["audit_sink"]
    assert ready.json()["checks"]["terminusdb"] == "ok"


def test_readyz_with_terminusdb_down(deploy: Callable[..., Deployment], faults: Callable[..., dict]) -> None:
    deployment = deploy()
    faults(action="status", status=503, path_prefix="/api/", times=None)
    ready = deployment.client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["terminusdb"] != "ok" and checks["audit_sink"] != "ok" and checks["dlq_dir"] == "ok"
    assert isinstance(httpx.get(deployment.url + "/healthz").json(), dict)
