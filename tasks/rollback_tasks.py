"""Steps of the rollback flow: remove fields per type, or reset the branch; then compare with the snapshot."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.migration_plan import RemoveAuditFields
from core.migration_report import ValidationCheck, ValidationSection
from core.schema_snapshot import SchemaSnapshot, schema_differences

from .patching import own_properties
from .terminus_target import Target, open_gateway, retry_if_transient

RETRIES = {
    "retries": 3,
    "retry_delay_seconds": [1, 2, 4],
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_if_transient,
}


@task(name="remove", task_run_name="remove-{removal.class_name}", cache_policy=NO_CACHE, **RETRIES)  # type: ignore[call-overload]
def apply_removal(target: Target, removal: RemoveAuditFields, author: str, message: str) -> list[str]:
    """One DeleteClassProperty call (one commit) per type; fields already gone are skipped, so re-runs resume."""
    with open_gateway(target) as gateway:
        present = own_properties(gateway.schema(), removal.class_name)
        todo = {name: rng for name, rng in removal.fields.items() if name in present}
        if todo:
            gateway.migrate(
                RemoveAuditFields(class_name=removal.class_name, fields=todo).to_operations(),
                author=author,
                message=message,
            )
    get_run_logger().info("%s: removed %s", removal.class_name, ", ".join(sorted(todo)) or "nothing (already gone)")
    return sorted(todo)


@task(name="reset", cache_policy=NO_CACHE, **RETRIES)  # type: ignore[call-overload]
def reset_branch(target: Target, commit_id: str) -> None:
    with open_gateway(target) as gateway:
        gateway.reset(commit_id)


@task(name="validate-rollback", cache_policy=NO_CACHE, **RETRIES)  # type: ignore[call-overload]
def validate_against_snapshot(target: Target, snapshot_path: str | None) -> ValidationSection:
    """The schema must again equal the one saved before the migration."""
    if not snapshot_path:
        check = ValidationCheck(name="schema_matches_snapshot", ok=False, detail="the report names no snapshot")
        return ValidationSection(ok=False, checks=[check])
    snapshot = SchemaSnapshot.load(Path(snapshot_path))
    with open_gateway(target) as gateway:
        differences = schema_differences(snapshot.schema_documents, gateway.schema())
    check = ValidationCheck(
        name="schema_matches_snapshot",
        ok=not differences,
        detail="; ".join(differences[:20]) or f"schema equals the snapshot taken at commit {snapshot.head_commit}",
    )
    return ValidationSection(ok=check.ok, checks=[check])
