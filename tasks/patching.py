"""Patch one document type: one TerminusDB migration call, so one commit, per type."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from core.migration_plan import AddAuditFields
from core.schema_documents import own_properties
from core.terminus import TerminusGateway

from .terminus_target import TRANSIENT_RETRIES, Target, open_gateway


class PatchOutcome(BaseModel):
    class_name: str
    added: list[str]
    already_present: list[str]
    instance_operations: int = 0


def patch_with(gateway: TerminusGateway, operation: AddAuditFields, *, author: str, message: str) -> PatchOutcome:
    """Add the fields the class still lacks. Re-reading first makes a retry or a re-run resume, not duplicate."""
    present = own_properties(gateway.schema()).get(operation.class_name, set())
    missing = {name: rng for name, rng in operation.fields.items() if name not in present}
    outcome = PatchOutcome(
        class_name=operation.class_name,
        added=sorted(missing),
        already_present=sorted(set(operation.fields) - set(missing)),
    )
    if not missing:
        return outcome
    todo = AddAuditFields(class_name=operation.class_name, fields=missing)
    result = gateway.migrate(todo.to_operations(), author=author, message=message)
    outcome.instance_operations = result.instance_operations
    return outcome


@task(
    name="patch",
    task_run_name="patch-{operation.class_name}",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def patch_type(target: Target, operation: AddAuditFields, author: str, message: str) -> PatchOutcome:
    """Retried only on transient errors (connection, timeout, 5xx, lost race); a 4xx fails at once."""
    with open_gateway(target) as gateway:
        outcome = patch_with(gateway, operation, author=author, message=message)
    logger = get_run_logger()
    if outcome.added:
        logger.info("%s: added %s", outcome.class_name, ", ".join(outcome.added))
    else:
        logger.info("%s: already has every audit field; nothing to do", outcome.class_name)
    return outcome
