"""State survives a restart with a data directory; the demo seed loads through the validating write path."""

from __future__ import annotations

from pathlib import Path

import httpx

from sandbox.server import SandboxServer

COMMIT = {"author": "a", "message": "m"}


def test_state_survives_restart(tmp_path: Path) -> None:
    with SandboxServer(data_dir=tmp_path) as server, httpx.Client(base_url=server.url, auth=("admin", "root")) as c:
        assert c.post("/api/db/admin/keep", json={"label": "keep"}).status_code == 200
        base = "/api/document/admin/keep"
        schema = {"@type": "Class", "@id": "Item", "n": "xsd:integer"}
        assert c.post(base, params={**COMMIT, "graph_type": "schema"}, json=schema).status_code == 200
        items = [{"@type": "Item", "@id": f"Item/{i}", "n": i} for i in range(5)]
        assert c.post(base, params=COMMIT, json=items).status_code == 200
        assert c.delete(base, params={**COMMIT, "id": "Item/0"}).status_code == 204
        assert c.post("/api/branch/admin/keep/local/branch/dev", json={"origin": "main"}).status_code == 200
        log_before = c.get("/api/log/admin/keep").json()
        docs_before = c.get(base, params={"as_list": "true"}).json()
    assert (tmp_path / "sandbox-state.json").exists()
    with SandboxServer(data_dir=tmp_path) as server, httpx.Client(base_url=server.url, auth=("admin", "root")) as c:
        assert c.get("/api/log/admin/keep").json() == log_before
        assert c.get("/api/document/admin/keep", params={"as_list": "true"}).json() == docs_before
        assert c.get("/api/db/admin/keep", params={"branches": "true"}).json()["branches"] == ["dev", "main"]


def test_demo_seed() -> None:
    with SandboxServer(seed="demo") as server, httpx.Client(base_url=server.url, auth=("admin", "root")) as c:
        log = c.get("/api/log/admin/oms").json()
        assert len(log) == 2
        schema = c.get("/api/document/admin/oms", params={"graph_type": "schema", "as_list": "true"}).json()
        assert schema[0]["@type"] == "@context"
        assert len(schema) > 1
        assert c.get("/api/document/admin/oms", params={"as_list": "true", "count": "5"}).json()
