"""Which schema types get the audit fields, which inherit them, which are skipped — and why."""

from __future__ import annotations

import gc
import random

import pytest
from schema_builders import CONTEXT, analyze, audit_props, cls

from core.audit_fields import AUDIT_FIELDS
from core.errors import UnknownTypes
from core.schema_analysis import TypeAction, analyze_schema, is_system_type
from sandbox.demo_seed import demo_documents, demo_schema

ALL = list(AUDIT_FIELDS)
PATCH, COVERED, PRESENT, SKIP = (
    TypeAction.PATCH,
    TypeAction.COVERED_BY_PARENT,
    TypeAction.ALREADY_PRESENT,
    TypeAction.SKIP,
)


def actions(analysis) -> dict[str, TypeAction]:
    return {entry.name: entry.action for entry in analysis.types}


def test_plain_classes_are_each_their_own_root() -> None:
    result = analyze(cls("Person", name="xsd:string"), cls("Place", name="xsd:string"))
    people = result.by_name()["Person"]
    assert actions(result) == {"@context": SKIP, "Person": PATCH, "Place": PATCH}
    assert people.missing_fields == ALL
    assert people.present_fields == []
    assert people.root == "Person" and people.roots == ["Person"]
    assert "topmost document class" in people.reason
    assert result.conflicts == []


def test_abstract_root_is_patched_and_children_are_covered() -> None:
    result = analyze(
        cls("Resource", abstract=True, name="xsd:string"),
        cls("ObjectType", "Resource"),
        cls("LinkType", "Resource"),
        counts={"ObjectType": 4, "LinkType": 6},
    )
    by_name = result.by_name()
    assert by_name["Resource"].action == PATCH
    assert "abstract root" in by_name["Resource"].reason
    assert by_name["Resource"].subtree_document_count == 10
    for child in ("ObjectType", "LinkType"):
        assert by_name[child].action == COVERED
        assert by_name[child].root == "Resource"
        assert by_name[child].reason == "inherits the audit fields from Resource"
        assert by_name[child].missing_fields == ALL
        assert by_name[child].parents == ["Resource"]


def test_three_level_chain_names_the_top_as_root_and_sums_documents() -> None:
    result = analyze(
        cls("A", abstract=True),
        cls("B", "A", abstract=True),
        cls("C", "B"),
        counts={"A": 0, "B": 0, "C": 7},
    )
    by_name = result.by_name()
    assert [by_name[n].action for n in "ABC"] == [PATCH, COVERED, COVERED]
    assert by_name["C"].root == "A"
    assert [by_name[n].subtree_document_count for n in "ABC"] == [7, 7, 7]
    assert [by_name[n].document_count for n in "ABC"] == [0, 0, 7]


def test_multiple_inheritance_patches_every_root() -> None:
    result = analyze(
        cls("Named", abstract=True),
        cls("Versioned", abstract=True),
        cls("ObjectType", "Named", "Versioned"),
        counts={"ObjectType": 3},
    )
    by_name = result.by_name()
    assert by_name["Named"].action == by_name["Versioned"].action == PATCH
    covered = by_name["ObjectType"]
    assert covered.action == COVERED
    assert covered.roots == ["Named", "Versioned"]
    assert covered.root == "Named"
    assert covered.reason == "inherits the audit fields from Named, Versioned"
    assert by_name["Named"].subtree_document_count == by_name["Versioned"].subtree_document_count == 3


def test_diamond_has_one_root_and_counts_the_bottom_once() -> None:
    result = analyze(
        cls("Top"),
        cls("Left", "Top"),
        cls("Right", "Top"),
        cls("Bottom", "Left", "Right"),
        counts={"Top": 1, "Left": 10, "Right": 100, "Bottom": 1000},
    )
    by_name = result.by_name()
    assert actions(result) == {"@context": SKIP, "Top": PATCH, "Left": COVERED, "Right": COVERED, "Bottom": COVERED}
    assert by_name["Bottom"].roots == ["Top"]
    assert by_name["Top"].subtree_document_count == 1111
    assert by_name["Left"].subtree_document_count == 1010
    assert by_name["Right"].subtree_document_count == 1100
    assert by_name["Bottom"].subtree_document_count == 1000


def test_diamond_below_two_roots_and_a_deep_chain() -> None:
    chain = [cls("L0")] + [cls(f"L{i}", f"L{i - 1}") for i in range(1, 30)]
    result = analyze(
        *chain,
        cls("Mixin", abstract=True),
        cls("Joined", "L29", "Mixin"),
        cls("Leaf", "Joined", "L5"),
        counts={"Leaf": 2, "Joined": 1, "L10": 5},
    )
    by_name = result.by_name()
    assert [e.name for e in result.with_action(PATCH)] == ["L0", "Mixin"]
    assert by_name["Leaf"].roots == ["L0", "Mixin"]
    assert by_name["L0"].subtree_document_count == 8
    assert by_name["L11"].subtree_document_count == 3
    assert by_name["Mixin"].subtree_document_count == 3


def test_subdocuments_enums_and_tagged_unions_are_skipped_with_reasons() -> None:
    result = analyze(
        cls("Document"),
        cls("Address", subdocument=True, street="xsd:string"),
        cls("Note", "Document", subdocument=True),
        {"@type": "Enum", "@id": "Status", "@value": ["draft", "active"]},
        {"@type": "TaggedUnion", "@id": "Choice", "@subdocument": [], "@key": {"@type": "Random"}, "a": "xsd:string"},
        {"@type": "Foreign", "@id": "External"},
        counts={"Status": 0, "Document": 2},
    )
    by_name = result.by_name()
    assert by_name["Document"].action == PATCH
    for name in ("Address", "Note"):
        assert by_name[name].action == SKIP
        assert by_name[name].reason == "subdocument: its parent document carries the audit fields"
        assert by_name[name].missing_fields == []
        assert by_name[name].root is None
    assert by_name["Status"].action == SKIP and by_name["Status"].kind == "Enum"
    assert by_name["Status"].reason.startswith("enum")
    assert by_name["Choice"].action == SKIP and by_name["Choice"].reason.startswith("tagged union")
    assert by_name["External"].action == SKIP and "not a class" in by_name["External"].reason
    assert by_name["@context"].reason == "the @context document holds prefixes, not a type"


def test_instances_and_required_fields_do_not_matter_and_counts_are_exact_types() -> None:
    result = analyze(
        cls("Person", name="xsd:string", age="xsd:integer", friends={"@type": "Set", "@class": "Person"}),
        cls("Employee", "Person", employer="xsd:string"),
        counts={"Person": 40, "Employee": 2, "Ghost": 99},
    )
    by_name = result.by_name()
    assert by_name["Person"].action == PATCH
    assert (by_name["Person"].document_count, by_name["Person"].subtree_document_count) == (40, 42)
    assert (by_name["Employee"].document_count, by_name["Employee"].subtree_document_count) == (2, 2)
    assert "Ghost" not in by_name


def test_all_fields_present_everywhere_is_already_present() -> None:
    result = analyze(cls("Root", **audit_props()), cls("Child", "Root"))
    by_name = result.by_name()
    assert by_name["Root"].action == PRESENT
    assert by_name["Root"].reason == "declares all six audit fields"
    assert by_name["Child"].action == PRESENT
    assert by_name["Child"].reason == "has all six audit fields (some inherited)"
    assert by_name["Child"].present_fields == ALL and by_name["Child"].missing_fields == []


def test_fields_inherited_from_outside_the_scope_count_as_present() -> None:
    result = analyze(cls("Base", **audit_props()), cls("Included", "Base"), include=["Included"])
    by_name = result.by_name()
    assert by_name["Included"].action == PRESENT
    assert by_name["Base"].action == SKIP


def test_partial_presence_plans_only_the_missing_fields() -> None:
    result = analyze(cls("Root", **audit_props("_created_by", "_created_at")), cls("Child", "Root"))
    root = result.by_name()["Root"]
    assert root.action == PATCH
    assert root.present_fields == ["_created_by", "_created_at"]
    assert root.missing_fields == ["_created_by_username", "_updated_by", "_updated_by_username", "_updated_at"]
    assert "2 of 6 audit fields already present" in root.reason
    assert result.by_name()["Child"].missing_fields == root.missing_fields


def test_partial_presence_on_a_child_still_patches_the_root_with_all_fields() -> None:
    result = analyze(cls("Root"), cls("Child", "Root", **audit_props("_updated_at")))
    by_name = result.by_name()
    assert by_name["Root"].missing_fields == ALL
    assert by_name["Child"].action == COVERED
    assert by_name["Child"].present_fields == ["_updated_at"]
    assert "_updated_at" not in by_name["Child"].missing_fields
    assert result.conflicts == []


def test_full_xsd_iri_ranges_count_as_the_right_range() -> None:
    iri = "http://www.w3.org/2001/XMLSchema#"
    props = {name: {"@type": "Optional", "@class": iri + rng[4:]} for name, rng in AUDIT_FIELDS.items()}
    assert analyze(cls("Root", **props)).by_name()["Root"].action == PRESENT


@pytest.mark.parametrize(
    ("declared", "found"),
    [
        ("xsd:dateTime", "xsd:dateTime"),
        ({"@type": "Optional", "@class": "xsd:string"}, "Optional<xsd:string>"),
        ({"@type": "Set", "@class": "xsd:dateTime"}, "Set<xsd:dateTime>"),
    ],
)
def test_an_audit_field_with_another_range_is_a_conflict_naming_class_field_and_types(declared, found) -> None:
    result = analyze(cls("Root"), cls("Child", "Root", _created_at=declared))
    assert len(result.conflicts) == 1
    conflict = result.conflicts[0]
    assert (conflict.class_name, conflict.field) == ("Child", "_created_at")
    assert conflict.expected == "Optional<xsd:dateTime>"
    assert conflict.found == found
    for part in ("Child", "_created_at", "Optional<xsd:dateTime>", found):
        assert part in conflict.message
    assert result.blocked
    assert "_created_at" not in result.by_name()["Child"].missing_fields
    assert "_created_at" not in result.by_name()["Child"].present_fields


def test_conflict_on_a_patch_target_says_it_is_blocked() -> None:
    result = analyze(cls("Root", _updated_by="xsd:string"))
    root = result.by_name()["Root"]
    assert root.action == PATCH
    assert "_updated_by" not in root.missing_fields
    assert "blocked" in root.reason
    assert [(c.class_name, c.field) for c in result.conflicts] == [("Root", "_updated_by")]


def test_conflicts_count_on_ancestors_of_reached_classes_but_not_on_untouched_ones() -> None:
    result = analyze(
        cls("Outside", _created_by="xsd:string"),
        cls("Inside", "Outside"),
        cls("Unrelated", _created_by="xsd:integer"),
        include=["Inside"],
    )
    assert [(c.class_name, c.found) for c in result.conflicts] == [("Outside", "xsd:string")]


def test_unknown_include_or_exclude_names_raise_listing_them_and_the_known_ones() -> None:
    with pytest.raises(UnknownTypes) as caught:
        analyze(cls("Person"), cls("Place"), include=["Persn"], exclude=["Plaec", "Place"])
    assert caught.value.unknown == ["Persn", "Plaec"]
    assert caught.value.known == ["Person", "Place"]
    assert "Persn" in str(caught.value) and "Person" in str(caught.value)


def test_a_name_both_included_and_excluded_is_an_error() -> None:
    with pytest.raises(ValueError, match="both to include and to exclude"):
        analyze(cls("Person"), include=["Person"], exclude=["Person"])


def test_include_puts_only_the_named_trees_in_scope_and_their_top_becomes_the_root() -> None:
    result = analyze(
        cls("Base", abstract=True),
        cls("Mid", "Base"),
        cls("Leaf", "Mid"),
        cls("Other", "Base"),
        cls("Alone"),
        include=["Mid"],
    )
    by_name = result.by_name()
    assert by_name["Mid"].action == PATCH and by_name["Mid"].root == "Mid"
    assert by_name["Leaf"].action == COVERED and by_name["Leaf"].root == "Mid"
    for name in ("Base", "Other", "Alone"):
        assert by_name[name].action == SKIP
        assert by_name[name].reason == "not in the include list"


def test_excluding_a_root_excludes_its_tree() -> None:
    result = analyze(cls("Root"), cls("Child", "Root"), cls("Kept"), exclude=["Root"])
    by_name = result.by_name()
    assert by_name["Root"].action == SKIP and by_name["Root"].reason == "excluded by user"
    assert by_name["Child"].action == SKIP
    assert by_name["Child"].reason == "excluded by user (descends from excluded Root)"
    assert by_name["Kept"].action == PATCH


def test_excluding_a_class_whose_ancestor_is_patched_reports_that_it_still_inherits() -> None:
    result = analyze(
        cls("Root", abstract=True),
        cls("Excluded", "Root"),
        cls("Other", "Root"),
        cls("Mixin", abstract=True),
        cls("Both", "Mixin", "Excluded"),
        exclude=["Excluded"],
    )
    by_name = result.by_name()
    assert by_name["Root"].action == PATCH
    excluded = by_name["Excluded"]
    assert excluded.action == COVERED
    assert excluded.reason.startswith("excluded by user, but inherits the audit fields from Root")
    assert "exclude Root too" in excluded.reason
    both = by_name["Both"]
    assert both.action == COVERED and both.roots == ["Mixin", "Root"]
    assert both.reason.startswith("excluded by user (descends from excluded Excluded), but inherits")
    assert "exclude Mixin, Root too" in both.reason
    assert by_name["Mixin"].action == PATCH  # an in-scope root, even though its only child is excluded


@pytest.mark.parametrize(
    "name",
    ["sys:JSONDocument", "xsd:string", "rdfs:Class", "owl:Thing", "http://terminusdb.com/schema/sys#Unit",
     "http://www.w3.org/2002/07/owl#Thing", "sysAudit", "SysConfig", "sys_log", "Sys", "sys", "Sys2", "SYS_META"],
)  # fmt: skip
def test_system_type_names(name: str) -> None:
    assert is_system_type(name)


@pytest.mark.parametrize("name", ["System", "Syslog", "Sysadmin", "Synonym", "SYSTEM", "Person", "ex:Sys", "mySys"])
def test_ordinary_names_are_not_system_types(name: str) -> None:
    assert not is_system_type(name)


def test_system_classes_are_skipped_even_when_included_and_their_children_become_roots() -> None:
    result = analyze(cls("SysBase", abstract=True), cls("Thing", "SysBase"), cls("sys_log"), include=["SysBase"])
    by_name = result.by_name()
    assert by_name["SysBase"].action == SKIP
    assert by_name["SysBase"].reason.startswith("system type")
    assert by_name["Thing"].action == PATCH
    assert by_name["sys_log"].action == SKIP


def test_empty_schema_has_only_the_context() -> None:
    result = analyze_schema([CONTEXT], {}, head_commit="c0")
    assert [(e.name, e.action) for e in result.types] == [("@context", SKIP)]
    assert result.conflicts == []
    assert analyze_schema([], {}, head_commit="c0").types == []


def test_result_does_not_depend_on_document_order() -> None:
    docs = [
        cls("Top"),
        cls("Left", "Top"),
        cls("Right", "Top"),
        cls("Bottom", "Left", "Right"),
        cls("Mixin", abstract=True),
        cls("Other", "Mixin", _created_at="xsd:string"),
        {"@type": "Enum", "@id": "E", "@value": ["x"]},
    ]
    counts = {"Bottom": 3, "Left": 1}
    expected = analyze(*docs, counts=counts)
    shuffler = random.Random(7)
    for _ in range(5):
        shuffled = docs[:]
        shuffler.shuffle(shuffled)
        assert analyze(*shuffled, counts=counts) == expected


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([cls("A", "B"), cls("B", "A")], "inheritance cycle: A inherits B inherits A"),
        ([{"@type": "Class", "name": "xsd:string"}], "has no @id"),
        ([cls("A"), cls("A")], "appears twice"),
        ([{"@type": "Class", "@id": "A", "@inherits": 3}], "@inherits must be"),
        (["not a document"], "not a JSON object"),
    ],
)
def test_malformed_schemas_are_rejected_with_a_clear_message(docs, message) -> None:
    with pytest.raises(ValueError, match=message):
        analyze(*docs)


def test_schema_must_be_a_list() -> None:
    with pytest.raises(TypeError, match="list of schema documents"):
        analyze_schema({"@type": "@context"}, {}, head_commit="c0")  # type: ignore[arg-type]


def test_to_frame_has_one_row_per_document_and_readable_columns() -> None:
    frame = analyze(cls("Root"), cls("Child", "Root"), counts={"Child": 5}).to_frame()
    assert list(frame["name"]) == ["@context", "Child", "Root"]
    assert list(frame["action"]) == ["skip", "covered_by_parent", "patch"]
    row = frame.set_index("name").loc["Child"]
    assert row["missing_fields"] == ", ".join(ALL)
    assert row["parents"] == "Root"
    assert row["document_count"] == 5
    assert {"reason", "subtree_document_count", "root", "present_fields", "kind"} <= set(frame.columns)


def test_the_demo_seed_patches_its_two_roots_and_covers_every_other_document_class() -> None:
    documents = demo_documents()
    counts: dict[str, int] = {}
    for doc in documents:
        counts[doc["@type"]] = counts.get(doc["@type"], 0) + 1
    result = analyze(*demo_schema(), counts=counts)
    by_name = result.by_name()
    assert sorted(e.name for e in result.with_action(PATCH)) == ["OntologyResource", "Versioned"]
    covered = {"TypeDefinition", "ObjectType", "InterfaceType", "LinkType", "ActionType", "Property"}
    assert {e.name for e in result.with_action(COVERED)} == covered
    assert by_name["ObjectType"].roots == ["OntologyResource", "Versioned"]
    assert by_name["Property"].roots == ["OntologyResource"]
    skipped = {"@context", "Constraint", "Multiplicity", "DataType", "Status"}
    assert {e.name for e in result.with_action(SKIP)} == skipped
    assert result.conflicts == []
    assert by_name["OntologyResource"].subtree_document_count == len(documents)
    assert by_name["Versioned"].subtree_document_count == counts["ObjectType"] + counts["LinkType"]
    assert 200 <= len(documents) <= 500
    assert demo_documents() == documents  # deterministic


def test_head_commit_is_required() -> None:
    with pytest.raises(ValueError, match="head_commit"):
        analyze_schema([CONTEXT], {}, head_commit="")


def test_the_garbage_collector_is_left_as_it_was_even_after_an_error() -> None:
    assert gc.isenabled()
    analyze(cls("A"))
    assert gc.isenabled()
    with pytest.raises(ValueError):
        analyze(cls("A", "B"), cls("B", "A"))
    assert gc.isenabled()
    gc.disable()
    try:
        analyze(cls("A"))
        assert not gc.isenabled()
    finally:
        gc.enable()
