"""Validate a finished audit-fields migration (see core.audit_validation for the checks)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from core.audit_validation import validate_migration
from core.migration_report import ValidationSection
from core.schema_analysis import SchemaAnalysis

from .terminus_target import TRANSIENT_RETRIES, Target, open_gateway


@task(
    name="validate",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def validate_target(target: Target, before: SchemaAnalysis, service_account: str, run_id: str) -> ValidationSection:
    with open_gateway(target) as gateway:
        return validate_migration(gateway, before, service_account=service_account, run_id=run_id)
