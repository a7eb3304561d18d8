"""Validate a finished audit-fields migration (see core.audit_validation for the checks)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from core.audit_validation import validate_migration
from core.migration_report import ValidationSection
from core.schema_analysis import SchemaAnalysis

from .terminus_target import Target, open_gateway, retry_if_transient


@task(
    name="validate",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[1, 3],
    retry_condition_fn=retry_if_transient,
)
def validate_target(target: Target, before: SchemaAnalysis, service_account: str, run_id: str) -> ValidationSection:
    with open_gateway(target) as gateway:
        return validate_migration(gateway, before, service_account=service_account, run_id=run_id)
