"""What the plan says about types named with --include, and about a plan with nothing to patch."""

from __future__ import annotations

from typing import Any

from core.audit_fields import AUDIT_FIELDS
from core.migration_plan import MigrationPlan, build_plan
from core.schema_analysis import TypeAction, analyze_schema
from sandbox.demo_seed import demo_schema

HEAD = "c" * 32


def plan_of(schema: list[dict[str, Any]], **scope: list[str]) -> MigrationPlan:
    analysis = analyze_schema(schema, {}, head_commit=HEAD, **scope)
    return build_plan(analysis, database="oms", branch="main")


def test_an_included_child_class_says_its_root_stays_without_the_fields() -> None:
    entries = plan_of(demo_schema(), include=["TypeDefinition"]).analysis.by_name()
    child = entries["TypeDefinition"]
    assert child.action == TypeAction.PATCH
    assert "topmost" not in child.reason
    assert "included without its parent OntologyResource" in child.reason
    assert "OntologyResource and the rest of its tree stay without them" in child.reason
    assert entries["OntologyResource"].action == TypeAction.SKIP


def test_an_included_enum_or_subdocument_says_it_was_skipped_and_why() -> None:
    entries = plan_of(demo_schema(), include=["Status", "Constraint", "Property"]).analysis.by_name()
    assert entries["Status"].action == TypeAction.SKIP
    assert entries["Status"].reason.startswith("enum")
    assert "named in the include list, but skipped" in entries["Status"].reason
    assert entries["Constraint"].action == TypeAction.SKIP
    assert entries["Constraint"].reason.startswith("subdocument")
    assert "named in the include list, but skipped" in entries["Constraint"].reason
    assert entries["Property"].action == TypeAction.PATCH


def test_nothing_in_scope_is_no_document_types_to_patch() -> None:
    for plan in (plan_of([]), plan_of(demo_schema(), exclude=["OntologyResource", "Versioned"])):
        assert plan.operations == []
        assert plan.nothing_to_patch is not None and plan.nothing_to_patch.startswith("no document types to patch")


def test_a_migrated_schema_already_has_the_fields() -> None:
    fields = {name: {"@type": "Optional", "@class": base} for name, base in AUDIT_FIELDS.items()}
    schema = [{"@type": "Class", "@id": "Thing", **fields}]
    plan = plan_of(schema)
    assert plan.operations == [] and plan.nothing_to_patch is not None
    assert plan.nothing_to_patch.startswith("every document type in scope already has the audit fields")
    assert plan_of(demo_schema()).nothing_to_patch is None
