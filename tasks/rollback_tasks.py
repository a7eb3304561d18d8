"""Steps of the rollback flow: remove fields per type, or reset the branch; then check the resulting schema."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.migration_plan import RemoveAuditFields
from core.migration_report import ValidationCheck, ValidationSection
from core.schema_documents import own_properties, schema_differences

from .terminus_target import TRANSIENT_RETRIES, Target, open_gateway


@task(name="remove", task_run_name="remove-{removal.class_name}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def apply_removal(target: Target, removal: RemoveAuditFields, author: str, message: str) -> list[str]:
    """One DeleteClassProperty call (one commit) per type; fields already gone are skipped, so re-runs resume."""
    with open_gateway(target) as gateway:
        present = own_properties(gateway.schema()).get(removal.class_name, set())
        todo = {name: rng for name, rng in removal.fields.items() if name in present}
        if todo:
            gateway.migrate(
                RemoveAuditFields(class_name=removal.class_name, fields=todo).to_operations(),
                author=author,
                message=message,
            )
    get_run_logger().info("%s: removed %s", removal.class_name, ", ".join(sorted(todo)) or "nothing (already gone)")
    return sorted(todo)


@task(name="reset", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def reset_branch(target: Target, commit_id: str) -> None:
    with open_gateway(target) as gateway:
        gateway.reset(commit_id)


@task(name="validate-rollback", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def validate_schema(target: Target, expected: list[dict[str, Any]], meaning: str) -> ValidationSection:
    """The schema must now read exactly as ``expected`` (``meaning`` says what that is, for the report)."""
    with open_gateway(target) as gateway:
        differences = schema_differences(expected, gateway.schema())
    check = ValidationCheck(
        name="schema_as_expected",
        ok=not differences,
        detail="; ".join(differences[:20]) or f"schema equals {meaning}",
    )
    return ValidationSection(ok=check.ok, checks=[check])
