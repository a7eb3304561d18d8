"""Plans: exact TerminusDB operations, reversibility, fingerprints, estimates and the reviewer's markdown."""

from __future__ import annotations

import random
import re

import pytest
from pydantic import ValidationError
from schema_builders import CONTEXT, analyze, audit_props, cls

from core.audit_fields import AUDIT_FIELDS
from core.errors import PlanConflict, SchemaDrift
from core.migration_plan import (
    ASSUMED_SECONDS_PER_CALL,
    SECONDS_PER_DOCUMENT,
    AddAuditFields,
    MigrationPlan,
    RemoveAuditFields,
    build_plan,
    check_drift,
    estimate_duration,
    fingerprint,
)

DOCS = [
    cls("Resource", abstract=True, name="xsd:string"),
    cls("ObjectType", "Resource", "Versioned"),
    cls("Versioned", abstract=True, **audit_props("_created_by", "_created_at")),
    cls("LinkType", "Resource"),
    cls("Constraint", subdocument=True),
    {"@type": "Enum", "@id": "Status", "@value": ["draft"]},
]
COUNTS = {"ObjectType": 30, "LinkType": 12}


def plan_for(*docs, head: str = "c0", seconds_per_call: float | None = 0.02, **options) -> MigrationPlan:
    analysis = analyze(*(docs or DOCS), counts=COUNTS, head=head, **options)
    return build_plan(analysis, database="oms", branch="main", seconds_per_call=seconds_per_call)


def test_add_audit_fields_gives_the_exact_create_class_property_shapes() -> None:
    op = AddAuditFields(class_name="Person", fields={"_created_at": "xsd:dateTime", "_created_by": "xsd:string"})
    assert op.to_operations() == [
        {
            "@type": "CreateClassProperty",
            "class": "Person",
            "property": "_created_by",
            "type": {"@type": "Optional", "@class": "xsd:string"},
        },
        {
            "@type": "CreateClassProperty",
            "class": "Person",
            "property": "_created_at",
            "type": {"@type": "Optional", "@class": "xsd:dateTime"},
        },
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "at least one field"),
        ({"name": "xsd:string"}, "not an audit field"),
        ({"_created_at": "xsd:string"}, "has range xsd:dateTime, not xsd:string"),
    ],
)
def test_operations_accept_only_audit_fields_with_their_ranges(fields, message) -> None:
    with pytest.raises(ValidationError, match=message):
        AddAuditFields(class_name="Person", fields=fields)
    with pytest.raises(ValidationError, match="class_name"):
        RemoveAuditFields(class_name="", fields={"_created_by": "xsd:string"})


def test_plan_patches_the_roots_with_only_their_missing_fields_in_alphabetical_order() -> None:
    plan = plan_for()
    assert [op.class_name for op in plan.operations] == ["Resource", "Versioned"]
    assert list(plan.operations[0].fields) == list(AUDIT_FIELDS)
    assert plan.operations[1].fields == {
        "_created_by_username": "xsd:string",
        "_updated_by": "xsd:string",
        "_updated_by_username": "xsd:string",
        "_updated_at": "xsd:dateTime",
    }
    assert (plan.database, plan.branch, plan.head_commit) == ("oms", "main", "c0")


def test_reverse_removes_exactly_the_added_fields_last_operation_first() -> None:
    plan = plan_for()
    reverse = plan.reverse()
    assert [op.class_name for op in reverse] == ["Versioned", "Resource"]
    assert reverse[0].to_operations() == [
        {"@type": "DeleteClassProperty", "class": "Versioned", "property": name}
        for name in ("_created_by_username", "_updated_by", "_updated_by_username", "_updated_at")
    ]
    assert reverse[1].to_operations() == [
        {"@type": "DeleteClassProperty", "class": "Resource", "property": name} for name in AUDIT_FIELDS
    ]
    assert [op.reverse() for op in reversed(reverse)] == plan.operations


def test_conflicts_block_the_plan() -> None:
    analysis = analyze(cls("Root"), cls("Child", "Root", _created_by="xsd:integer"))
    with pytest.raises(PlanConflict) as caught:
        build_plan(analysis, database="oms", branch="main")
    assert caught.value.conflicts == analysis.conflicts
    assert "Child._created_by" in str(caught.value)
    assert "xsd:integer" in str(caught.value) and "Optional<xsd:string>" in str(caught.value)


def test_nothing_to_do_gives_an_empty_plan() -> None:
    plan = plan_for(cls("Done", **audit_props()))
    assert plan.operations == []
    assert plan.reverse() == []
    assert plan.estimated_duration_seconds == 0
    assert plan.estimate_basis == "nothing to patch: no migration calls"
    assert "**0 to patch**" in plan.to_markdown()


def test_fingerprint_is_stable_and_independent_of_input_and_operation_order() -> None:
    first = plan_for()
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint)
    shuffled = DOCS[:]
    random.Random(3).shuffle(shuffled)
    assert plan_for(*shuffled).fingerprint == first.fingerprint
    assert fingerprint(list(reversed(first.operations)), "c0") == first.fingerprint
    assert fingerprint(first.operations, "c0") == first.fingerprint
    # The estimate is not part of what was approved.
    assert plan_for(seconds_per_call=9.0).fingerprint == first.fingerprint


def test_fingerprint_changes_with_the_head_commit_and_with_the_operations() -> None:
    base = plan_for()
    assert plan_for(head="c1").fingerprint != base.fingerprint
    assert plan_for(*DOCS, cls("NewRoot")).fingerprint != base.fingerprint
    fewer = [op for op in base.operations if op.class_name != "Versioned"]
    assert fingerprint(fewer, "c0") != base.fingerprint
    one_field_less = AddAuditFields(class_name="Resource", fields={"_created_by": "xsd:string"})
    assert fingerprint([one_field_less, base.operations[1]], "c0") != base.fingerprint
    removal = [op.reverse() for op in base.operations]
    assert fingerprint(removal, "c0") != base.fingerprint


def test_check_drift() -> None:
    plan = plan_for()
    schema = [CONTEXT, *DOCS]
    # a document write moved the head commit: same schema, same operations, so no drift
    check_drift(plan, plan_for(head="c9"), planned_schema=schema, current_schema=schema)
    changed = [*schema, cls("LateArrival")]
    with pytest.raises(SchemaDrift) as caught:
        check_drift(plan, plan_for(*DOCS, cls("LateArrival"), head="c9"), planned_schema=schema, current_schema=changed)
    assert caught.value.expected_fingerprint == plan.fingerprint
    assert caught.value.actual_fingerprint != plan.fingerprint
    assert caught.value.changes == ["LateArrival: unexpected"]
    with pytest.raises(SchemaDrift, match="operations differ"):
        check_drift(plan, plan_for(exclude=["Versioned"]), planned_schema=schema, current_schema=schema)


def test_estimate_uses_the_measured_call_time_and_the_documents_below_each_patched_class() -> None:
    plan = plan_for(seconds_per_call=0.5)
    documents = 42 + 30  # Resource's subtree + Versioned's subtree (ObjectType)
    assert plan.estimated_duration_seconds == pytest.approx(2 * 0.5 + documents * SECONDS_PER_DOCUMENT)
    assert plan.estimate_basis.startswith("2 patch calls \N{MULTIPLICATION SIGN} 0.5 s measured per dry-run call")
    assert f"\N{MULTIPLICATION SIGN} {documents} documents" in plan.estimate_basis


def test_estimate_without_a_measurement_says_it_assumed_one() -> None:
    plan = plan_for(seconds_per_call=None)
    assert plan.estimated_duration_seconds == pytest.approx(2 * ASSUMED_SECONDS_PER_CALL + 72 * SECONDS_PER_DOCUMENT)
    assert "assumed per call (no dry-run call measured)" in plan.estimate_basis


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_estimate_rejects_impossible_measurements(bad: float) -> None:
    analysis = analyze(*DOCS)
    with pytest.raises(ValueError, match="seconds_per_call"):
        estimate_duration([AddAuditFields(class_name="Resource", fields={"_created_by": "xsd:string"})], analysis, bad)


def test_markdown_has_heading_summary_and_a_row_per_type_patches_first() -> None:
    text = plan_for().to_markdown()
    lines = text.splitlines()
    assert lines[0] == "## Audit-fields migration plan: `oms` on branch `main`"
    assert lines[2].startswith(
        "**2 to patch**, 2 covered by a parent, 0 already present, 3 skipped, no conflicts — "
        "10 fields to add in 2 migration calls"
    )
    assert "| type | action | reason | missing fields | documents |" in lines
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| type")]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "Resource", "Versioned", "LinkType", "ObjectType", "@context", "Constraint", "Status",
    ]  # fmt: skip
    assert rows[0] == (
        "| Resource | **patch** | abstract root of its inheritance tree; descendants inherit the fields "
        "| all six | 0 (42 with descendants) |"
    )
    assert "`_created_by_username`, `_updated_by`, `_updated_by_username`, `_updated_at`" in rows[1]
    assert "| covered_by_parent | inherits the audit fields from Resource, Versioned |" in rows[3]
    assert rows[3].endswith("| 30 |")
    assert plan_for().fingerprint[:16] in text


def test_markdown_escapes_pipes_and_limits_rows() -> None:
    docs = [cls("A|B")] + [cls(f"T{i:03}") for i in range(30)]
    plan = plan_for(*docs)
    assert "| A\\|B | **patch** |" in plan.to_markdown()
    short = plan.to_markdown(max_rows=5)
    assert short.count("| **patch** |") == 5
    assert "… and 27 more types (all of them are in the report)." in short
    assert plan.to_markdown(max_rows=None).count("| **patch** |") == 31


def test_plan_survives_a_json_round_trip() -> None:
    plan = plan_for()
    assert MigrationPlan.model_validate_json(plan.model_dump_json()) == plan
