"""Validate a finished audit-fields migration (see core.audit_validation for the checks) or rollback."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from core.audit_validation import validate_migration
from core.migration_report import ValidationCheck, ValidationSection
from core.schema_analysis import SchemaAnalysis
from core.schema_documents import schema_differences

from .terminus_target import TRANSIENT_RETRIES, Target, open_gateway


@task(
    name="validate",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def validate_target(target: Target, before: SchemaAnalysis, service_account: str, run_id: str) -> ValidationSection:
    with open_gateway(target) as gateway:
        return validate_migration(gateway, before, service_account=service_account, run_id=run_id)


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
