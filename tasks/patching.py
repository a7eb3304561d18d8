"""The runtime that applies a plan's operations, migration and rollback alike (Alembic's runtime, DESIGN §2).

Operations (core.migration_plan) describe a change and know their reverse; this module applies them: one
TerminusDB migration call, so one commit, per type (or one branch reset), re-reading first so that a retry
or a re-run resumes instead of repeating. ``apply_operations`` walks a plan in order, keeping the run's books
(each type ``applying`` → ``applied``/``failed``) and stopping between two types when asked to.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from pydantic import BaseModel

from core.migration_plan import AddAuditFields, RemoveAuditFields, ResetBranch, SchemaOperation
from core.schema_documents import own_properties
from core.terminus import TerminusGateway

from .artifacts import start_progress
from .run_record import RunBooks
from .terminus_target import TRANSIENT_RETRIES, Target, open_gateway


class PatchOutcome(BaseModel):
    class_name: str
    #: fields added or removed by this call (empty: it was done already)
    changed: list[str]
    already_done: list[str]
    instance_operations: int = 0


def apply_with(gateway: TerminusGateway, operation: SchemaOperation, *, author: str, message: str) -> PatchOutcome:
    """Apply one operation, or only what of it is left undone."""
    if isinstance(operation, ResetBranch):
        if gateway.head_commit() == operation.to_commit:
            return PatchOutcome(class_name=operation.label, changed=[], already_done=[operation.to_commit])
        gateway.reset(operation.to_commit)
        return PatchOutcome(class_name=operation.label, changed=[operation.to_commit], already_done=[])
    present = own_properties(gateway.schema()).get(operation.class_name, set())
    todo = operation.still_to_do(present)
    changed = sorted(todo.fields) if todo is not None else []
    outcome = PatchOutcome(
        class_name=operation.class_name, changed=changed, already_done=sorted(set(operation.fields) - set(changed))
    )
    if todo is not None:
        outcome.instance_operations = gateway.migrate(
            todo.to_operations(), author=author, message=message
        ).instance_operations
    return outcome


def patch_with(gateway: TerminusGateway, operation: AddAuditFields, *, author: str, message: str) -> PatchOutcome:
    """Add the fields the class still lacks (the benchmark's entry into the runtime)."""
    return apply_with(gateway, operation, author=author, message=message)


def _task_run_name() -> str:
    operation = task_run.parameters["operation"]
    if isinstance(operation, AddAuditFields):
        return f"patch-{operation.class_name}"
    if isinstance(operation, RemoveAuditFields):
        return f"remove-{operation.class_name}"
    return f"reset-{operation.to_commit[:12]}"


@task(name="apply", task_run_name=_task_run_name, cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def apply_operation(target: Target, operation: SchemaOperation, author: str, message: str) -> PatchOutcome:
    """Retried only on transient errors (connection, timeout, 5xx, lost race); a 4xx fails at once."""
    with open_gateway(target) as gateway:
        outcome = apply_with(gateway, operation, author=author, message=message)
    verb = (
        "reset"
        if isinstance(operation, ResetBranch)
        else "added"
        if isinstance(operation, AddAuditFields)
        else "removed"
    )
    if outcome.changed:
        get_run_logger().info("%s: %s %s", outcome.class_name, verb, ", ".join(outcome.changed))
    else:
        get_run_logger().info("%s: already done; nothing to do", outcome.class_name)
    return outcome


def apply_operations(target: Target, operations: Sequence[SchemaOperation], run: RunBooks, message: str) -> None:
    """Every operation in plan order, one task (one commit) each; the books follow every step."""
    progress = start_progress(len(operations), target.database)
    for done, operation in enumerate(operations, start=1):
        run.check_in()
        run.type_state(operation.label, "applying")
        try:
            apply_operation(target, operation, run.report.service_account, message)
        except BaseException:
            run.type_state(operation.label, "failed")
            raise
        run.type_state(operation.label, "applied")
        progress.advance(done, operation.label)
