"""Sandbox speed: a 10,000-document insert and a migration over 10,000 instances, over real HTTP.

Run: ``uv run python bench/bench_sandbox.py`` (prints a markdown table).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import httpx

from sandbox.server import SandboxServer

N = 10_000
REPEATS = 3
COMMIT = {"author": "bench", "message": "bench"}
SCHEMA = {"@type": "Class", "@id": "Item", "@key": {"@type": "Lexical", "@fields": ["code"]}, "code": "xsd:string"}


def _setup(client: httpx.Client, name: str, with_items: bool) -> str:
    assert client.post(f"/api/db/admin/{name}", json={"label": name}).status_code == 200
    base = f"/api/document/admin/{name}"
    assert client.post(base, params={**COMMIT, "graph_type": "schema"}, json=SCHEMA).status_code == 200
    if with_items:
        reply = client.post(base, params=COMMIT, json=_items())
        assert reply.status_code == 200, reply.text
    return base


def _items() -> list[dict[str, str]]:
    return [{"@type": "Item", "code": f"c{i:05d}"} for i in range(N)]


def _timed(action: Callable[[], httpx.Response]) -> float:
    start = time.perf_counter()
    reply = action()
    elapsed = time.perf_counter() - start
    assert reply.status_code == 200, reply.text[:500]
    return elapsed


def main() -> None:
    rows: list[tuple[str, list[float]]] = []
    with SandboxServer() as server, httpx.Client(base_url=server.url, auth=("admin", "root"), timeout=120) as c:
        inserts = []
        for run in range(REPEATS):
            base = _setup(c, f"bench_insert_{run}", with_items=False)
            items = _items()
            inserts.append(_timed(partial(c.post, base, params=COMMIT, json=items)))
        rows.append((f"insert {N:,} small documents (one POST)", inserts))
        migrations = []
        for run in range(REPEATS):
            _setup(c, f"bench_migrate_{run}", with_items=True)
            operation = {
                "@type": "CreateClassProperty",
                "class": "Item",
                "property": "created_by",
                "type": "xsd:string",
                "default": "unknown",
            }
            migrations.append(
                _timed(
                    partial(
                        c.post, f"/api/migration/admin/bench_migrate_{run}", json={**COMMIT, "operations": [operation]}
                    )
                )
            )
        rows.append((f"CreateClassProperty with default on {N:,} instances", migrations))
    print("| operation | median (s) | min (s) | max (s) |")
    print("|---|---|---|---|")
    for label, times in rows:
        print(f"| {label} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
