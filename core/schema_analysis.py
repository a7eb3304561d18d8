"""Which schema types get the audit fields, which inherit them, and which are left alone (and why).

Input is the schema graph exactly as TerminusDB's ``GET /api/document/...?graph_type=schema`` returns it: the
``@context`` document, then Class / Enum / TaggedUnion documents (``@inherits`` a string or a list,
``@abstract: []``, ``@subdocument: []``, ranges as strings or ``{"@type": "Optional"|..., "@class": ...}``).

Rules, in the order they are applied to each schema document:

1. ``@context``, ``Enum``, ``TaggedUnion`` (and any other non-``Class`` document) → ``skip``.
2. System types (see :func:`is_system_type`) → ``skip``; never modified, even when named in ``include`` (which is
   allowed: a system class's descendants then form the scope, and the topmost of them become roots).
3. ``@subdocument`` classes → ``skip``: their parent document carries the audit fields.
4. Every other class is a *document class*. ``include`` (when non-empty) and ``exclude`` select the document
   classes in scope; both apply to the named class **and all its descendants** (a class "is" each of its
   ancestors, so naming a class means its whole tree). The same name in both is an error.
5. The audit fields go on the *roots* of the scope: document classes in scope none of whose parents is an in-scope
   document class (abstract roots included). A root → ``patch`` (only the fields it lacks).
   Every other in-scope class → ``covered_by_parent``, naming its root(s): with multiple inheritance a class may
   have several roots (all of them are patched); through a diamond it reaches the same root twice (named once).
6. A document class that already has all six fields with the right range (own or inherited) → ``already_present``.
7. Out-of-scope document classes → ``skip`` ("excluded by user" / "not in the include list") — unless one of their
   ancestors is patched: fields on an ancestor reach every descendant, so such a class is reported
   ``covered_by_parent`` and the reason says how to leave it untouched (exclude that ancestor as well).
8. An audit field declared with another range blocks the plan (:class:`FieldConflict`) when it is declared on a
   class the fields will reach, or on an ancestor of one (TerminusDB would reject the migration with a diamond
   violation, HTTP 500). Declarations on classes the plan never touches are left alone.

Counts: ``document_count`` is the number of documents of exactly that ``@type``; ``subtree_document_count``
adds every descendant class once, even when reached through a diamond.

Cost: linear in the schema size, plus the ancestor count of each class with several parents (5,000 classes in
about 0.05 s; see bench/bench_analysis.py).
"""

from __future__ import annotations

import gc
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, computed_field

from core.audit_fields import AUDIT_FIELDS, audit_field_range, describe_range, is_audit_range
from core.errors import UnknownTypes

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SYSTEM_NAMESPACES",
    "SYSTEM_PREFIXES",
    "FieldConflict",
    "SchemaAnalysis",
    "TypeAction",
    "TypeAnalysis",
    "analyze_schema",
    "is_system_type",
]

SYSTEM_PREFIXES: frozenset[str] = frozenset(
    {"sys", "xsd", "xdd", "rdf", "rdfs", "owl", "api", "vio", "woql", "layer", "ref", "repo", "json"}
)
"""Prefixes TerminusDB reserves for its own vocabularies."""

SYSTEM_NAMESPACES: tuple[str, ...] = ("http://terminusdb.com/schema/", "http://www.w3.org/")
"""Full-IRI namespaces of TerminusDB's system schema and of the W3C vocabularies."""

_SYSTEM_NAME = re.compile(r"(?:[sS]ys(?:[A-Z0-9_]|$)|SYS(?:_|$))")


def is_system_type(name: str) -> bool:
    """Whether a schema id denotes a system type, which the migration never touches.

    A type is a system type when its id
    * uses a reserved prefix (``sys:``, ``xsd:``, ``xdd:``, ``rdf:``, ``rdfs:``, ``owl:``, ``api:``, ``vio:``,
      ``woql:``, ``layer:``, ``ref:``, ``repo:``, ``json:``), or
    * is a full IRI in TerminusDB's system namespace (``http://terminusdb.com/schema/...``) or a W3C one, or
    * starts with the word ``sys`` as a camelCase / snake_case prefix: ``sys``/``Sys`` followed by an upper-case
      letter, a digit, ``_`` or nothing (``sysAudit``, ``SysConfig``, ``sys_log``, ``Sys``), or ``SYS`` followed
      by ``_`` or nothing (``SYS_META``).

    Ordinary words that merely begin with those letters are *not* system types: ``System``, ``Syslog``,
    ``Sysadmin``, ``Synonym``, ``SYSTEM``.
    """
    if ":" not in name and name[:3] not in ("sys", "Sys", "SYS"):
        return False  # the common case, decided without the regex
    if any(name.startswith(namespace) for namespace in SYSTEM_NAMESPACES):
        return True
    prefix, colon, _ = name.partition(":")
    if colon and prefix in SYSTEM_PREFIXES:
        return True
    return _SYSTEM_NAME.match(name) is not None


class TypeAction(StrEnum):
    """What the migration does with one schema document."""

    PATCH = "patch"
    COVERED_BY_PARENT = "covered_by_parent"
    ALREADY_PRESENT = "already_present"
    SKIP = "skip"


class TypeAnalysis(BaseModel):
    """The verdict on one schema document, with the reason a reviewer reads."""

    name: str
    kind: str
    action: TypeAction
    reason: str
    missing_fields: list[str] = Field(default_factory=list)
    present_fields: list[str] = Field(default_factory=list)
    document_count: int = 0
    subtree_document_count: int = 0
    root: str | None = None
    roots: list[str] = Field(default_factory=list)
    parents: list[str] = Field(default_factory=list)


class FieldConflict(BaseModel):
    """An audit field a class already declares with another range: it blocks the plan."""

    class_name: str
    field: str
    expected: str
    found: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def message(self) -> str:
        return (
            f"class {self.class_name} declares {self.field} as {self.found}, but the audit field must be "
            f"{self.expected}; change or remove that declaration before migrating"
        )

    def __str__(self) -> str:
        return self.message


class SchemaAnalysis(BaseModel):
    """The classified schema at one head commit."""

    types: list[TypeAnalysis]
    conflicts: list[FieldConflict] = Field(default_factory=list)
    head_commit: str

    @property
    def blocked(self) -> bool:
        return bool(self.conflicts)

    def by_name(self) -> dict[str, TypeAnalysis]:
        return {entry.name: entry for entry in self.types}

    def with_action(self, action: TypeAction) -> list[TypeAnalysis]:
        return [entry for entry in self.types if entry.action == action]

    def action_counts(self) -> dict[TypeAction, int]:
        counts = dict.fromkeys(TypeAction, 0)
        for entry in self.types:
            counts[entry.action] += 1
        return counts

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per schema document; list columns joined with ", " so the rows print as a table."""
        rows = []
        for entry in self.types:
            row = entry.model_dump()
            row["action"] = entry.action.value
            for key in ("missing_fields", "present_fields", "roots", "parents"):
                row[key] = ", ".join(row[key])
            rows.append(row)
        return rows

    def to_frame(self) -> pd.DataFrame:
        """:meth:`to_rows` as a DataFrame (pandas is imported here only: a second of start-up otherwise)."""
        import pandas as pd

        return pd.DataFrame(self.to_rows(), columns=list(TypeAnalysis.model_fields))


# --------------------------------------------------------------------------------------------------- parsing
#
# Internally every schema document is an integer index and per-document facts live in parallel lists:
# cache-friendly and allocation-light, which keeps the analysis linear on large schemas. Audit fields are
# bit masks (bit i = the i-th field of AUDIT_FIELDS).

_FIELD_BITS: dict[str, int] = {name: 1 << position for position, name in enumerate(AUDIT_FIELDS)}
_ALL_BITS = (1 << len(AUDIT_FIELDS)) - 1
_FIELDS_BY_MASK: tuple[tuple[str, ...], ...] = tuple(
    tuple(name for name, bit in _FIELD_BITS.items() if mask & bit) for mask in range(_ALL_BITS + 1)
)
_NO_PARENTS: tuple[int, ...] = ()
_NO_CARRIERS: frozenset[int] = frozenset()


@dataclass(slots=True)
class _ParsedSchema:
    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    parents: list[list[str]] = field(default_factory=list)
    abstract: list[bool] = field(default_factory=list)
    subdocument: list[bool] = field(default_factory=list)
    ok_mask: list[int] = field(default_factory=list)  # audit fields declared with the right range
    bad: dict[int, dict[str, Any]] = field(default_factory=dict)  # audit fields declared with another range
    has_context: bool = False


def _flag(doc: Mapping[str, Any], key: str) -> bool:
    return key in doc and doc[key] is not None and doc[key] is not False


def _parents(doc: Mapping[str, Any], name: str) -> list[str]:
    inherits = doc.get("@inherits")
    if inherits is None:
        return []
    if isinstance(inherits, str):
        return [inherits]
    if isinstance(inherits, list) and all(isinstance(parent, str) for parent in inherits):
        return inherits
    raise ValueError(f"schema document {name!r}: @inherits must be a class name or a list of them, got {inherits!r}")


def _parse(schema: Sequence[Any]) -> _ParsedSchema:
    if not isinstance(schema, Sequence) or isinstance(schema, str | bytes):
        raise TypeError(
            f"schema must be the list of schema documents GET ?graph_type=schema returns, got {type(schema).__name__}"
        )
    parsed = _ParsedSchema()
    seen: set[str] = set()
    for position, raw in enumerate(schema):
        if not isinstance(raw, Mapping):
            raise ValueError(f"schema document #{position} is not a JSON object: {raw!r:.80}")
        kind = raw.get("@type")
        if kind == "@context":
            parsed.has_context = True
            continue
        name = raw.get("@id")
        if not isinstance(name, str) or not name:
            raise ValueError(f"schema document #{position} (@type {kind!r}) has no @id; every type needs one")
        if not isinstance(kind, str):
            raise ValueError(f"schema document {name!r} has no @type (expected Class, Enum or TaggedUnion)")
        if name in seen:
            raise ValueError(f"schema document {name!r} appears twice; the schema graph holds one per @id")
        seen.add(name)
        ok = 0
        if kind == "Class":
            bad: dict[str, Any] = {}
            for audit_field, bit in _FIELD_BITS.items():
                if audit_field in raw:
                    if is_audit_range(audit_field, raw[audit_field]):
                        ok |= bit
                    else:
                        bad[audit_field] = raw[audit_field]
            if bad:
                parsed.bad[len(parsed.names)] = bad
        parsed.names.append(name)
        parsed.kinds.append(kind)
        parsed.parents.append(_parents(raw, name))
        parsed.abstract.append(_flag(raw, "@abstract"))
        parsed.subdocument.append(_flag(raw, "@subdocument"))
        parsed.ok_mask.append(ok)
    return parsed


# -------------------------------------------------------------------------------------------- graph helpers


def _class_parents(parsed: _ParsedSchema, index: Mapping[str, int], is_class: list[bool]) -> list[tuple[int, ...]]:
    """Per document, the indices of its parents that are Class documents of this schema (others carry nothing)."""
    result: list[tuple[int, ...]] = []
    for position, parents in enumerate(parsed.parents):
        if not parents or not is_class[position]:
            result.append(_NO_PARENTS)
            continue
        resolved = [i for i in map(index.get, parents) if i is not None and is_class[i]]
        result.append(tuple(dict.fromkeys(resolved)) if len(resolved) > 1 else tuple(resolved))
    return result


def _topological_order(names: list[str], parents: list[tuple[int, ...]]) -> list[int]:
    """Parents before children (iterative depth-first search); raises ValueError naming a cycle."""
    count = len(names)
    state = bytearray(count)  # 0 new, 1 on the stack, 2 done
    next_parent = [0] * count
    order: list[int] = []
    for start in range(count):
        if state[start]:
            continue
        state[start] = 1
        stack = [start]
        while stack:
            node = stack[-1]
            node_parents = parents[node]
            step = next_parent[node]
            if step < len(node_parents):
                next_parent[node] = step + 1
                parent = node_parents[step]
                if state[parent] == 0:
                    state[parent] = 1
                    stack.append(parent)
                elif state[parent] == 1:
                    cycle = [names[i] for i in stack[stack.index(parent) :]] + [names[parent]]
                    raise ValueError(
                        f"inheritance cycle: {' inherits '.join(cycle)}; fix @inherits in the schema "
                        "(TerminusDB itself refuses such a schema)"
                    )
            else:
                state[node] = 2
                order.append(node)
                stack.pop()
    return order


def _closure_origins(starts: list[int], children: list[list[int]]) -> dict[int, int]:
    """Each start and all its descendants -> the start it was reached from (first start wins)."""
    origin: dict[int, int] = {}
    for start in starts:
        if start in origin:
            continue
        origin[start] = start
        stack = [start]
        while stack:
            for child in children[stack.pop()]:
                if child not in origin:
                    origin[child] = start
                    stack.append(child)
    return origin


def _subtree_counts(order: list[int], parents: list[tuple[int, ...]], counts: list[int]) -> list[int]:
    """Documents of each class and all its descendants, each descendant counted once even through diamonds.

    Children first: a single-parent class hands its whole mass (own documents + what its single-parent
    descendants handed it) to its parent, since its ancestors are its parent's plus itself. Only a class with
    several parents walks its distinct ancestors and adds its mass to each — so the cost is linear plus the
    ancestor counts of the multiple-inheritance classes alone.
    """
    mass = list(counts)
    totals = [0] * len(counts)
    seen_by = [-1] * len(counts)
    for node in reversed(order):
        weight = mass[node]
        totals[node] += weight
        node_parents = parents[node]
        if not weight or not node_parents:
            continue
        if len(node_parents) == 1:
            mass[node_parents[0]] += weight
            continue
        stack = []
        for parent in node_parents:
            if seen_by[parent] != node:
                seen_by[parent] = node
                stack.append(parent)
        while stack:
            ancestor = stack.pop()
            totals[ancestor] += weight
            for parent in parents[ancestor]:
                if seen_by[parent] != node:
                    seen_by[parent] = node
                    stack.append(parent)
    return totals


# ------------------------------------------------------------------------------------------------- analysis


def analyze_schema(
    schema: list[dict[str, Any]],
    document_counts: Mapping[str, int],
    *,
    head_commit: str,
    include: Collection[str] = (),
    exclude: Collection[str] = (),
) -> SchemaAnalysis:
    """Classify every schema document (see the module docstring for the rules).

    ``document_counts`` maps an exact ``@type`` to its number of documents (types absent count 0).
    Raises :class:`core.errors.UnknownTypes` when ``include``/``exclude`` name types the schema lacks, and
    ``ValueError`` for a malformed schema or a name given in both lists.
    """
    with _cyclic_gc_paused():
        return _analyze(schema, document_counts, head_commit, include, exclude)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the analysis runs.

    The analysis allocates one small, acyclic result object per type; with the collector on, its repeated
    passes over the growing heap made 50,000 classes cost 20x the time of 5,000 instead of 10x. Reference
    counting still frees everything; the collector is restored (if it was on) even when the analysis raises.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _analyze(
    schema: list[dict[str, Any]],
    document_counts: Mapping[str, int],
    head_commit: str,
    include: Collection[str],
    exclude: Collection[str],
) -> SchemaAnalysis:
    if not isinstance(head_commit, str) or not head_commit:
        raise ValueError(f"head_commit must be the branch's head commit id, got {head_commit!r}")
    parsed = _parse(schema)
    names = parsed.names
    total = len(names)
    index = {name: position for position, name in enumerate(names)}
    include_set, exclude_set = set(include), set(exclude)
    unknown = (include_set | exclude_set) - index.keys()
    if unknown:
        raise UnknownTypes(sorted(unknown), sorted(names))
    both = include_set & exclude_set
    if both:
        raise ValueError(
            f"{', '.join(sorted(both))} given both to include and to exclude; name each type in one list only"
        )

    is_class = [kind == "Class" for kind in parsed.kinds]
    parents = _class_parents(parsed, index, is_class)
    order = _topological_order(names, parents)
    is_document = [is_class[i] and not parsed.subdocument[i] and not is_system_type(names[i]) for i in range(total)]

    included: dict[int, int] | None = None
    excluded: dict[int, int] = {}
    if include_set or exclude_set:
        children: list[list[int]] = [[] for _ in range(total)]
        for child, child_parents in enumerate(parents):
            for parent in child_parents:
                children[parent].append(child)
        if include_set:
            included = _closure_origins(sorted(index[name] for name in include_set), children)
        excluded = _closure_origins(sorted(index[name] for name in exclude_set), children)
    in_scope = [is_document[i] and (included is None or i in included) and i not in excluded for i in range(total)]
    is_target = [in_scope[i] and not any(in_scope[p] for p in parents[i]) for i in range(total)]

    # Parents first: audit fields (own or inherited) and the targets above each class ("carriers").
    ok_mask, bad_mask = list(parsed.ok_mask), [0] * total
    for position, declared in parsed.bad.items():
        bad_mask[position] = sum(_FIELD_BITS[name] for name in declared)
    carriers: list[frozenset[int]] = [_NO_CARRIERS] * total
    for node in order:
        node_parents = parents[node]
        if len(node_parents) == 1:
            parent = node_parents[0]
            ok_mask[node] |= ok_mask[parent]
            bad_mask[node] |= bad_mask[parent]
            carriers[node] = frozenset((node,)) if is_target[node] else carriers[parent]
        elif node_parents:
            for parent in node_parents:
                ok_mask[node] |= ok_mask[parent]
                bad_mask[node] |= bad_mask[parent]
            carriers[node] = (
                frozenset((node,)) if is_target[node] else _NO_CARRIERS.union(*(carriers[p] for p in node_parents))
            )
        elif is_target[node]:
            carriers[node] = frozenset((node,))

    conflicts = _conflicts(parsed, parents, carriers) if parsed.bad else []
    counts = [int(document_counts.get(name, 0)) for name in names]
    subtree = _subtree_counts(order, parents, counts)

    results: list[TypeAnalysis] = []
    if parsed.has_context:
        results.append(
            TypeAnalysis(
                name="@context",
                kind="@context",
                action=TypeAction.SKIP,
                reason="the @context document holds prefixes, not a type",
            )
        )
    construct = TypeAnalysis.model_construct
    root_names: dict[frozenset[int], tuple[str, ...]] = {}  # carrier sets are shared along chains
    covered_reasons: dict[tuple[str, ...], str] = {}
    for node in sorted(range(total), key=names.__getitem__):
        name = names[node]
        kind = parsed.kinds[node]
        if not is_class[node]:
            results.append(
                construct(
                    name=name,
                    kind=kind,
                    action=TypeAction.SKIP,
                    reason=_named_but_skipped(_non_class_reason(kind))
                    if name in include_set
                    else _non_class_reason(kind),
                    missing_fields=[],
                    present_fields=[],
                    document_count=counts[node],
                    subtree_document_count=counts[node],
                    root=None,
                    roots=[],
                    parents=list(parsed.parents[node]),
                )
            )
            continue
        have, broken = ok_mask[node], bad_mask[node]
        present_mask = have & ~broken
        missing = list(_FIELDS_BY_MASK[_ALL_BITS & ~have & ~broken])
        above = carriers[node]
        if above in root_names:
            root_tuple = root_names[above]
        else:
            root_tuple = root_names[above] = tuple(sorted(names[c] for c in above))
        roots = list(root_tuple)
        planned: list[str] = []
        if not is_document[node]:
            action = TypeAction.SKIP
            reason = (
                "subdocument: its parent document carries the audit fields"
                if parsed.subdocument[node] and not is_system_type(name)
                else "system type: reserved for TerminusDB, never modified"
            )
            if name in include_set:
                reason = _named_but_skipped(reason)
        elif roots and present_mask == _ALL_BITS:
            action = TypeAction.ALREADY_PRESENT
            reason = (
                "declares all six audit fields"
                if parsed.ok_mask[node] == _ALL_BITS
                else "has all six audit fields (some inherited)"
            )
        elif is_target[node]:
            action = TypeAction.PATCH
            left_out = [names[p] for p in parents[node] if is_document[p] and not in_scope[p]]
            reason = _patch_reason(parsed.abstract[node], present_mask, broken, below=left_out)
            planned = missing
        elif in_scope[node]:
            action = TypeAction.COVERED_BY_PARENT
            reason = covered_reasons.get(root_tuple) or covered_reasons.setdefault(
                root_tuple, f"inherits the audit fields from {_join(roots)}"
            )
            planned = missing
        else:
            why = _out_of_scope_reason(node, names, included, excluded)
            if roots:
                action = TypeAction.COVERED_BY_PARENT
                reason = (
                    f"{why}, but inherits the audit fields from {_join(roots)} (fields on an ancestor reach "
                    f"every descendant; exclude {_join(roots)} too to leave it untouched)"
                )
                planned = missing
            else:
                action, reason = TypeAction.SKIP, why
        if action == TypeAction.SKIP:
            roots = []
        results.append(
            construct(
                name=name,
                kind=kind,
                action=action,
                reason=reason,
                missing_fields=planned,
                present_fields=list(_FIELDS_BY_MASK[present_mask]),
                document_count=counts[node],
                subtree_document_count=subtree[node],
                root=roots[0] if roots else None,
                roots=roots,
                parents=list(parsed.parents[node]),
            )
        )
    return SchemaAnalysis.model_construct(types=results, conflicts=conflicts, head_commit=head_commit)


def _conflicts(
    parsed: _ParsedSchema, parents: list[tuple[int, ...]], carriers: list[frozenset[int]]
) -> list[FieldConflict]:
    """Declarations with another range on classes the fields reach, or on their ancestors (diamond rule)."""
    relevant = bytearray(len(parents))
    stack = [node for node, above in enumerate(carriers) if above]
    for node in stack:
        relevant[node] = 1
    while stack:
        for parent in parents[stack.pop()]:
            if not relevant[parent]:
                relevant[parent] = 1
                stack.append(parent)
    return [
        FieldConflict(
            class_name=parsed.names[node],
            field=audit_field,
            expected=describe_range(audit_field_range(audit_field)),
            found=describe_range(declared),
        )
        for node in sorted(parsed.bad, key=parsed.names.__getitem__)
        if relevant[node]
        for audit_field, declared in sorted(parsed.bad[node].items())
    ]


def _join(names: Sequence[str]) -> str:
    return ", ".join(names)


def _non_class_reason(kind: str) -> str:
    if kind == "Enum":
        return "enum: its values are not documents"
    if kind == "TaggedUnion":
        return "tagged union: every property is an alternative, so an added field would change its meaning"
    return f"{kind} document: not a class"


def _named_but_skipped(reason: str) -> str:
    return f"{reason}; named in the include list, but skipped: it cannot carry the audit fields"


def _patch_reason(abstract: bool, present_mask: int, broken_mask: int, below: Sequence[str] = ()) -> str:
    if below:
        reason = (
            f"included without its parent {_join(below)}: gets the audit fields itself (its descendants inherit "
            f"them); {_join(below)} and the rest of its tree stay without them"
        )
    elif abstract:
        reason = "abstract root of its inheritance tree; descendants inherit the fields"
    else:
        reason = "topmost document class of its inheritance tree"
    present = len(_FIELDS_BY_MASK[present_mask])
    if present:
        reason += f"; {present} of {len(AUDIT_FIELDS)} audit fields already present, adding the others"
    if broken_mask:
        reason += f"; blocked: {', '.join(_FIELDS_BY_MASK[broken_mask])} declared with another range"
    return reason


def _out_of_scope_reason(node: int, names: list[str], included: dict[int, int] | None, excluded: dict[int, int]) -> str:
    if node in excluded:
        origin = excluded[node]
        return "excluded by user" if origin == node else f"excluded by user (descends from excluded {names[origin]})"
    if included is not None and node not in included:
        return "not in the include list"
    return "out of scope"  # pragma: no cover - every out-of-scope document class is excluded or not included
