"""Independent readings of a schema for assertions (deliberately not the analysis code under test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.audit_fields import AUDIT_FIELDS


def classes(schema: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["@id"]: doc for doc in schema if doc.get("@type") == "Class"}


def parents(doc: dict[str, Any]) -> list[str]:
    inherits = doc.get("@inherits", [])
    return [inherits] if isinstance(inherits, str) else list(inherits)


def effective_fields(schema: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Own and inherited properties of a class."""
    by_id = classes(schema)
    fields: dict[str, Any] = {}
    todo, seen = [name], set()
    while todo:
        current = todo.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        doc = by_id[current]
        fields.update({k: v for k, v in doc.items() if not k.startswith("@") and k not in fields})
        todo.extend(parents(doc))
    return fields


def document_classes(schema: list[dict[str, Any]]) -> list[str]:
    """Classes whose instances are documents (not subdocuments)."""
    return sorted(name for name, doc in classes(schema).items() if "@subdocument" not in doc)


def missing_audit_fields(schema: list[dict[str, Any]], name: str) -> list[str]:
    fields = effective_fields(schema, name)
    return [
        field
        for field, base in AUDIT_FIELDS.items()
        if fields.get(field) not in ({"@type": "Optional", "@class": base},)
    ]


def read_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def only_report(directory: Path, prefix: str = "migration_report_audit_fields_") -> dict[str, Any]:
    reports = sorted(directory.glob(f"{prefix}*.json"))
    assert len(reports) == 1, f"expected one report, found {[p.name for p in reports]}"
    return read_report(reports[0])


def task_runs_of(flow_run_id: Any, *, settle_seconds: float = 15.0) -> list[Any]:
    """The flow run's task runs once all have a final state (the API records them asynchronously)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + settle_seconds
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if all(run.state is not None and run.state.is_final() for run in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def artifacts_of(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return list(
            client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
        )


def artifact_keys_of(flow_run_id: Any) -> set[str]:
    return {artifact.key for artifact in artifacts_of(flow_run_id) if artifact.key}
