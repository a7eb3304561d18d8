"""Checks that an audit-fields migration did what it promised, and nothing else.

Every check is recorded (name, ok, detail) so the report shows what was verified, not just a verdict.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.audit_fields import AUDIT_FIELDS
from core.errors import OmsAuditError
from core.migration_report import ValidationCheck, ValidationSection
from core.schema_analysis import SchemaAnalysis, TypeAction, analyze_schema
from core.stamping import stamp_update
from core.terminus import TerminusGateway
from core.timestamps import utc_now


def check_fields_in_place(planned: Iterable[str], after: SchemaAnalysis) -> ValidationCheck:
    """Every patched or covered type now carries all six fields (own or inherited) with the right ranges."""
    actions = {entry.name: entry.action for entry in after.types}
    wanting = sorted(name for name in planned if actions.get(name) != TypeAction.ALREADY_PRESENT)
    conflicts = [f"{c.class_name}.{c.field}: {c.found} (expected {c.expected})" for c in after.conflicts]
    detail = "; ".join([*(f"{name}: {actions.get(name, 'missing from schema')}" for name in wanting), *conflicts])
    return ValidationCheck(
        name="audit_fields_present",
        ok=not wanting and not conflicts,
        detail=detail or "all patched and covered types have the six audit fields with the expected ranges",
    )


def check_counts_unchanged(before: dict[str, int], after: dict[str, int]) -> ValidationCheck:
    changed = sorted(
        f"{name}: {before.get(name, 0)} -> {after.get(name, 0)}"
        for name in before.keys() | after.keys()
        if before.get(name, 0) != after.get(name, 0)
    )
    total = sum(after.values())
    return ValidationCheck(
        name="document_counts_unchanged",
        ok=not changed,
        detail="; ".join(changed) or f"{total} documents in {len(after)} types, as before",
    )


@dataclass(frozen=True)
class _ServiceAccount:
    """The migration's service account as a stamping author (its name is its username too)."""

    id: str

    @property
    def username(self) -> str:
        return self.id


def _same_instant(left: object, right: object) -> bool:
    try:
        return datetime.fromisoformat(str(left).replace("Z", "+00:00")) == datetime.fromisoformat(
            str(right).replace("Z", "+00:00")
        )
    except ValueError:
        return False


def check_sample_write(
    gateway: TerminusGateway, candidate_types: Iterable[str], *, service_account: str, run_id: str
) -> list[ValidationCheck]:
    """Stamp one existing document on a scratch branch, read it back, then remove the branch."""
    scratch = f"audit-validate-{run_id[:8]}-{uuid.uuid4().hex[:6]}"
    sample: dict[str, Any] | None = None
    for type_name in candidate_types:
        sample = next(iter(gateway.iter_documents(doc_type=type_name)), None)
        if sample is not None:
            break
    if sample is None:
        return [ValidationCheck(name="sample_stamped_write", ok=True, detail="skipped: no documents to sample")]

    checks: list[ValidationCheck] = []
    gateway.create_branch(scratch)
    try:
        # The sample is an existing document being changed: the write path's update rule, nothing special.
        stamped = stamp_update(sample, sample, _ServiceAccount(service_account), utc_now())
        stamp = {name: value for name, value in stamped.items() if name in AUDIT_FIELDS}
        gateway.replace_documents(
            [stamped], author=service_account, message=f"audit-fields validation {run_id}", branch=scratch
        )
        read_back, _ = gateway.get_document(str(sample["@id"]), branch=scratch)
        wrong = [
            name
            for name, value in stamp.items()
            if read_back.get(name) != value and not (name.endswith("_at") and _same_instant(read_back.get(name), value))
        ]
        checks.append(
            ValidationCheck(
                name="sample_stamped_write",
                ok=not wrong,
                detail=f"{sample['@id']} on branch {scratch}: "
                + (
                    f"fields read back wrong: {', '.join(wrong)}"
                    if wrong
                    else f"audit fields {', '.join(sorted(stamp))} written and read back"
                ),
            )
        )
    except OmsAuditError as exc:
        checks.append(ValidationCheck(name="sample_stamped_write", ok=False, detail=f"{type(exc).__name__}: {exc}"))
    finally:
        try:
            gateway.delete_branch(scratch)
            removed = scratch not in gateway.branches()
            checks.append(
                ValidationCheck(
                    name="scratch_branch_removed",
                    ok=removed,
                    detail=f"{scratch} deleted" if removed else f"{scratch} still exists; delete it by hand",
                )
            )
        except OmsAuditError as exc:
            checks.append(ValidationCheck(name="scratch_branch_removed", ok=False, detail=f"{scratch}: {exc}"))
    return checks


def validate_migration(
    gateway: TerminusGateway,
    before: SchemaAnalysis,
    *,
    service_account: str,
    run_id: str,
) -> ValidationSection:
    """Re-read the schema and counts, then try a stamped write; returns every check's outcome."""
    planned = [t.name for t in before.types if t.action in (TypeAction.PATCH, TypeAction.COVERED_BY_PARENT)]
    schema = gateway.schema()
    counts = gateway.document_counts()
    after = analyze_schema(schema, counts, head_commit=gateway.head_commit())
    checks = [
        check_fields_in_place(planned, after),
        check_counts_unchanged({t.name: t.document_count for t in before.types}, counts),
    ]
    with_documents = sorted((t for t in before.types if t.name in planned), key=lambda t: -t.subtree_document_count)
    checks += check_sample_write(
        gateway, [t.name for t in with_documents], service_account=service_account, run_id=run_id
    )
    return ValidationSection(ok=all(check.ok for check in checks), checks=checks)
