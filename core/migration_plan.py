"""The audit-fields migration as reviewable, reversible operations (Alembic-style), with a fingerprint.

A plan is built from a :class:`~core.schema_analysis.SchemaAnalysis`: one :class:`AddAuditFields` per patched
type, each of which becomes one TerminusDB migration call (so one commit per type) and knows its reverse. The
fingerprint binds the operations to the head commit they were planned against and is what an approver
approves. After the approval the run re-plans (:func:`check_drift`): the schema must still equal the one
planned against and the operations the approved ones; document writes that only moved the head are fine.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

from core.audit_fields import AUDIT_FIELDS, audit_field_range
from core.errors import PlanConflict, SchemaDrift
from core.schema_analysis import SchemaAnalysis, TypeAction, TypeAnalysis
from core.schema_documents import schema_differences

__all__ = [
    "ASSUMED_SECONDS_PER_CALL",
    "SECONDS_PER_DOCUMENT",
    "AddAuditFields",
    "MigrationPlan",
    "RemoveAuditFields",
    "ResetBranch",
    "SchemaOperation",
    "build_plan",
    "check_drift",
    "estimate_duration",
    "fingerprint",
]

ASSUMED_SECONDS_PER_CALL = 0.05
"""Seconds per migration call assumed when no dry-run call was measured."""

SECONDS_PER_DOCUMENT = 20e-6
"""Seconds per document for the instance re-check TerminusDB runs after a real (non dry-run) migration call.
A dry run skips that check, so it is not part of the measured per-call time and is added per document."""

DEFAULT_MARKDOWN_ROWS = 200

TIMES = "\N{MULTIPLICATION SIGN}"
MICRO = "\N{MICRO SIGN}"


def _check_fields(class_name: str, fields: dict[str, str]) -> dict[str, str]:
    if not fields:
        raise ValueError(f"{class_name}: an audit-fields operation needs at least one field")
    for name, base_type in fields.items():
        if name not in AUDIT_FIELDS:
            raise ValueError(f"{class_name}: {name!r} is not an audit field; the audit fields are {list(AUDIT_FIELDS)}")
        if base_type != AUDIT_FIELDS[name]:
            raise ValueError(f"{class_name}: audit field {name} has range {AUDIT_FIELDS[name]}, not {base_type}")
    return {name: fields[name] for name in AUDIT_FIELDS if name in fields}


class _AuditFieldsOperation(BaseModel):
    class_name: str
    fields: dict[str, str]

    @field_validator("class_name")
    @classmethod
    def _class_named(cls, value: str) -> str:
        if not value:
            raise ValueError("class_name must name a schema class")
        return value

    @field_validator("fields")
    @classmethod
    def _audit_fields_only(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return _check_fields(info.data.get("class_name", "?"), value)


class AddAuditFields(_AuditFieldsOperation):
    """Declare audit fields (``Optional``, no default: 0 instance operations) on one class."""

    @property
    def label(self) -> str:
        return self.class_name

    def still_to_do(self, present: set[str]) -> AddAuditFields | None:
        """What is left given the class's own properties now: a retry or a re-run resumes, never duplicates."""
        missing = {name: rng for name, rng in self.fields.items() if name not in present}
        return AddAuditFields(class_name=self.class_name, fields=missing) if missing else None

    def to_operations(self) -> list[dict[str, Any]]:
        """The exact ``CreateClassProperty`` operations TerminusDB's migration endpoint accepts."""
        return [
            {
                "@type": "CreateClassProperty",
                "class": self.class_name,
                "property": name,
                "type": audit_field_range(name),
            }
            for name in self.fields
        ]

    def reverse(self) -> RemoveAuditFields:
        return RemoveAuditFields(class_name=self.class_name, fields=dict(self.fields))


class RemoveAuditFields(_AuditFieldsOperation):
    """Remove audit fields a migration added: drops them from the class and their values from its instances."""

    @property
    def label(self) -> str:
        return self.class_name

    def still_to_do(self, present: set[str]) -> RemoveAuditFields | None:
        """What is left given the class's own properties now (fields already gone are done)."""
        there = {name: rng for name, rng in self.fields.items() if name in present}
        return RemoveAuditFields(class_name=self.class_name, fields=there) if there else None

    def to_operations(self) -> list[dict[str, Any]]:
        """The exact ``DeleteClassProperty`` operations TerminusDB's migration endpoint accepts."""
        return [{"@type": "DeleteClassProperty", "class": self.class_name, "property": name} for name in self.fields]

    def reverse(self) -> AddAuditFields:
        return AddAuditFields(class_name=self.class_name, fields=dict(self.fields))


class ResetBranch(BaseModel):
    """Move the branch back to ``to_commit`` (from ``from_commit``, the head it was planned against)."""

    to_commit: str
    from_commit: str

    @property
    def label(self) -> str:
        return f"reset to {self.to_commit}"

    def reverse(self) -> ResetBranch:
        return ResetBranch(to_commit=self.from_commit, from_commit=self.to_commit)


SchemaOperation = AddAuditFields | RemoveAuditFields | ResetBranch
"""Everything a plan can ask the runtime (tasks.patching) to apply: each is one commit, or one reset."""


def fingerprint(operations: Iterable[AddAuditFields | RemoveAuditFields], head_commit: str) -> str:
    """sha256 (hex) of the canonical JSON of the operations' TerminusDB form and the head commit.

    Operations are ordered by (kind, class) first: each runs as its own call, so their order carries no meaning
    and must not change the fingerprint.
    """
    ordered = sorted(operations, key=lambda op: (type(op).__name__, op.class_name))
    payload = {"head_commit": head_commit, "operations": [op.to_operations() for op in ordered]}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.3g} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def estimate_duration(
    operations: Sequence[AddAuditFields], analysis: SchemaAnalysis, seconds_per_call: float | None = None
) -> tuple[float, str]:
    """(seconds, basis in words) for running the operations: one call each + the instance re-check.

    Each call is timed as one dry-run migration call (``seconds_per_call``, measured by the caller) plus
    :data:`SECONDS_PER_DOCUMENT` for every document of the patched class and its descendants, which TerminusDB
    re-checks after the real call. Without a measurement :data:`ASSUMED_SECONDS_PER_CALL` is used, and said.
    """
    if seconds_per_call is not None and (not math.isfinite(seconds_per_call) or seconds_per_call < 0):
        raise ValueError(f"seconds_per_call must be a measured duration >= 0, got {seconds_per_call!r}")
    calls = len(operations)
    if not calls:
        return 0.0, "nothing to patch: no migration calls"
    entries = analysis.by_name()
    documents = sum(entries[op.class_name].subtree_document_count for op in operations if op.class_name in entries)
    per_call = ASSUMED_SECONDS_PER_CALL if seconds_per_call is None else seconds_per_call
    how = "assumed per call (no dry-run call measured)" if seconds_per_call is None else "measured per dry-run call"
    seconds = calls * per_call + documents * SECONDS_PER_DOCUMENT
    basis = (
        f"{calls:,} patch call{'s' if calls != 1 else ''} {TIMES} {_format_seconds(per_call)} {how}"
        f" + {SECONDS_PER_DOCUMENT * 1e6:g} {MICRO}s {TIMES} {documents:,} documents re-checked"
        f" = {_format_seconds(seconds)}"
    )
    return seconds, basis


class MigrationPlan(BaseModel):
    """What a run will do to one branch, as approved by a person."""

    database: str
    branch: str
    head_commit: str
    operations: list[AddAuditFields]
    analysis: SchemaAnalysis
    fingerprint: str
    estimated_duration_seconds: float
    estimate_basis: str
    estimate_unknown: str | None = None
    """Why the duration could not be measured (the figure is then only the assumed rate), else None."""

    def estimate_unavailable(self, reason: str) -> MigrationPlan:
        """The same plan with its estimate marked unknown for ``reason`` (a failed timing call)."""
        return self.model_copy(
            update={"estimate_unknown": reason, "estimate_basis": f"unknown ({reason}); {self.estimate_basis}"}
        )

    @property
    def nothing_to_patch(self) -> str | None:
        """Why the plan has no operations, in words (None when it has some)."""
        if self.operations:
            return None
        counts = self.analysis.action_counts()
        if counts[TypeAction.ALREADY_PRESENT] or counts[TypeAction.COVERED_BY_PARENT]:
            return "every document type in scope already has the audit fields; nothing to approve or patch"
        return (
            "no document types to patch: the schema has no document classes, or --include/--exclude leave "
            "none in scope; nothing to approve or patch"
        )

    def reverse(self) -> list[RemoveAuditFields]:
        """The rollback: remove exactly the fields this plan adds, last operation first."""
        return [op.reverse() for op in reversed(self.operations)]

    @property
    def fields_to_add(self) -> int:
        return sum(len(op.fields) for op in self.operations)

    def summary(self) -> str:
        counts = self.analysis.action_counts()
        conflicts = len(self.analysis.conflicts)
        return (
            f"**{counts[TypeAction.PATCH]} to patch**, {counts[TypeAction.COVERED_BY_PARENT]} covered by a parent, "
            f"{counts[TypeAction.ALREADY_PRESENT]} already present, {counts[TypeAction.SKIP]} skipped, "
            + (f"**{conflicts} conflicts (blocked)**" if conflicts else "no conflicts")
            + f" — {self.fields_to_add} fields to add in {len(self.operations)} migration calls, "
            f"estimated {_format_seconds(self.estimated_duration_seconds)}."
        )

    def to_markdown(self, max_rows: int | None = DEFAULT_MARKDOWN_ROWS) -> str:
        """Heading, one-line summary, then one table row per type (patches first); ``max_rows=None`` for all."""
        lines = [
            f"## Audit-fields migration plan: `{self.database}` on branch `{self.branch}`",
            "",
            self.summary(),
            "",
            f"Head commit `{self.head_commit}` · fingerprint `{self.fingerprint[:16]}` · "
            f"estimate: {self.estimate_basis}.",
            "",
        ]
        if self.analysis.conflicts:
            lines += ["### Conflicts (they block the plan)", ""]
            lines += [f"- {_cell(conflict.message)}" for conflict in self.analysis.conflicts]
            lines.append("")
        rank = {action: position for position, action in enumerate(TypeAction)}
        rows = sorted(self.analysis.types, key=lambda entry: (rank[entry.action], entry.name))
        shown = rows if max_rows is None else rows[:max_rows]
        lines += ["| type | action | reason | missing fields | documents |", "|---|---|---|---|---:|"]
        lines += [_row(entry) for entry in shown]
        if len(shown) < len(rows):
            lines += ["", f"… and {len(rows) - len(shown):,} more types (all of them are in the report)."]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _row(entry: TypeAnalysis) -> str:
    action = f"**{entry.action.value}**" if entry.action == TypeAction.PATCH else entry.action.value
    if entry.action in (TypeAction.PATCH, TypeAction.COVERED_BY_PARENT) and entry.missing_fields:
        missing = (
            "all six"
            if len(entry.missing_fields) == len(AUDIT_FIELDS)
            else ", ".join(f"`{name}`" for name in entry.missing_fields)
        )
    else:
        missing = "—"
    documents = f"{entry.document_count:,}"
    if entry.subtree_document_count != entry.document_count:
        documents += f" ({entry.subtree_document_count:,} with descendants)"
    return f"| {_cell(entry.name)} | {action} | {_cell(entry.reason)} | {missing} | {documents} |"


def build_plan(
    analysis: SchemaAnalysis, *, database: str, branch: str, seconds_per_call: float | None = None
) -> MigrationPlan:
    """One :class:`AddAuditFields` per patched type (alphabetical), fingerprinted and estimated.

    Raises :class:`core.errors.PlanConflict` when the analysis found conflicting audit-field declarations.
    """
    if analysis.conflicts:
        raise PlanConflict(list(analysis.conflicts))
    operations = [
        AddAuditFields(class_name=entry.name, fields={name: AUDIT_FIELDS[name] for name in entry.missing_fields})
        for entry in sorted(analysis.with_action(TypeAction.PATCH), key=lambda entry: entry.name)
        if entry.missing_fields
    ]
    seconds, basis = estimate_duration(operations, analysis, seconds_per_call)
    return MigrationPlan(
        database=database,
        branch=branch,
        head_commit=analysis.head_commit,
        operations=operations,
        analysis=analysis,
        fingerprint=fingerprint(operations, analysis.head_commit),
        estimated_duration_seconds=seconds,
        estimate_basis=basis,
    )


def check_drift(
    approved: MigrationPlan,
    current: MigrationPlan,
    *,
    planned_schema: list[dict[str, Any]],
    current_schema: list[dict[str, Any]],
) -> None:
    """Raise :class:`core.errors.SchemaDrift` if the schema or the operations changed since ``approved``.

    The head commit alone is not compared: on a live ontology every document write moves it, and an
    approved plan could then never run. Any schema change is drift, even one the operations would survive.
    """
    changes = schema_differences(planned_schema, current_schema)
    if not changes and [op.to_operations() for op in current.operations] != [
        op.to_operations() for op in approved.operations
    ]:
        changes = ["the planned operations differ"]
    if changes:
        raise SchemaDrift(approved.fingerprint, current.fingerprint, changes=changes)
