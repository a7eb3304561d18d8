"""Every commit reads back as it was written, though only heads, roots and checkpoints keep a full dict of
documents (older commits are rebuilt from deltas): before and after a restart, in order, with history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from sandbox.server import SandboxServer

COMMIT = {"author": "a", "message": "m"}
BASE = "/api/document/admin/hist"


def _head_commit(c: httpx.Client) -> str:
    return str(c.get("/api/log/admin/hist", params={"count": "1"}).json()[0]["identifier"])


def _at(c: httpx.Client, commit: str) -> list[dict[str, Any]]:
    reply = c.get(f"{BASE}/local/commit/{commit}", params={"as_list": "true"})
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def test_every_commit_reads_back_as_written_across_many_commits_and_a_restart(tmp_path: Path) -> None:
    seen: dict[str, list[dict[str, Any]]] = {}
    with SandboxServer(data_dir=tmp_path) as server, httpx.Client(base_url=server.url, auth=("admin", "root")) as c:
        assert c.post("/api/db/admin/hist", json={"label": "hist"}).status_code == 200
        schema = {"@type": "Class", "@id": "Item", "n": "xsd:integer"}
        assert c.post(BASE, params={**COMMIT, "graph_type": "schema"}, json=schema).status_code == 200
        current: list[dict[str, Any]] = []
        for step in range(40):
            if step % 10 == 7:  # delete two, one commit each
                for doc in current[1:3]:
                    assert c.delete(BASE, params={**COMMIT, "id": doc["@id"]}).status_code == 204
                    seen[_head_commit(c)] = c.get(BASE, params={"as_list": "true"}).json()
            elif step % 10 == 9:  # replace one
                doc = {"@type": "Item", "@id": current[-1]["@id"], "n": -step}
                assert c.put(BASE, params=COMMIT, json=doc).status_code == 200
            elif step == 25:  # a full replace: a new order
                docs = [{"@type": "Item", "@id": f"Item/{i}", "n": i} for i in (30, 2, 20, 1)]
                assert c.post(BASE, params={**COMMIT, "full_replace": "true"}, json=docs).status_code == 200
            else:
                docs = [{"@type": "Item", "@id": f"Item/{step * 3 + k}", "n": step} for k in range(3)]
                assert c.post(BASE, params=COMMIT, json=docs).status_code == 200
            current = c.get(BASE, params={"as_list": "true"}).json()
            seen[_head_commit(c)] = current
        assert len(seen) > 40  # the deletions commit one by one
        db = server.app.store.get("admin", "hist")
        assert db is not None and sum(commit.snapshot is None for commit in db.commits.values()) > 20
        for commit, docs in seen.items():
            assert _at(c, commit) == docs
        history = c.get("/api/history/admin/hist", params={"id": "Item/2"}).json()
    assert len(history) >= 2, "Item/2 was created and written again by the full replace"
    with SandboxServer(data_dir=tmp_path) as server, httpx.Client(base_url=server.url, auth=("admin", "root")) as c:
        for commit, docs in seen.items():
            assert _at(c, commit) == docs
        assert c.get("/api/history/admin/hist", params={"id": "Item/2"}).json() == history
