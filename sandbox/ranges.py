"""Property ranges: parsing the schema syntax, the stored GET form, and the weakening order.

A range is what a class says about one property: a plain class name (exactly one value) or a
``{"@type": "Optional"|"Set"|"List"|"Array"|"Cardinality", "@class": ...}`` dict. Weakening (used by the
diamond rule, migration inference and UpcastClassProperty) means "every value valid before is valid after".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

INF = math.inf


class RangeSyntaxError(ValueError):
    """The range is not in any form the schema language accepts."""


@dataclass(frozen=True)
class Range:
    """A parsed property range. ``kind``: one, Optional, Set, List, Array, Cardinality, TaggedUnionAlt."""

    kind: str
    cls: str
    min: int = 1
    max: float = 1
    dimensions: int = 1

    @property
    def set_like(self) -> bool:
        """Values form an unordered collection bounded by [min, max] (one/Optional/Set/Cardinality)."""
        return self.kind in ("one", "Optional", "Set", "Cardinality")

    @property
    def required(self) -> bool:
        """True if an instance must carry at least one value (or a list) for this property."""
        return (self.set_like and self.min >= 1) or self.kind == "List"

    @property
    def collection(self) -> bool:
        """True if the submitted value is a JSON list of values."""
        return self.kind in ("Set", "Cardinality", "List", "Array")


def _int_field(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RangeSyntaxError(f"{name} must be a non-negative integer")
    return value


def parse_range(value: Any, normalise_class: Callable[[str], str] = lambda s: s) -> Range:
    """Parse a submitted (or stored) range. ``normalise_class`` maps class spellings to the stored form."""
    if isinstance(value, str):
        if not value:
            raise RangeSyntaxError("empty range")
        return Range("one", normalise_class(value))
    if not isinstance(value, dict):
        raise RangeSyntaxError("a range is a class name or a typed range object")
    kind = value.get("@type")
    cls = value.get("@class")
    if not isinstance(cls, str) or not cls:
        raise RangeSyntaxError("missing @class")
    cls = normalise_class(cls)
    if kind == "Optional":
        return Range("Optional", cls, 0, 1)
    if kind in ("Set", "Cardinality"):
        lo: int = 0
        hi: float = INF
        if "@cardinality" in value:
            lo = _int_field(value["@cardinality"], "@cardinality")
            hi = lo
        if "@min_cardinality" in value:
            lo = _int_field(value["@min_cardinality"], "@min_cardinality")
        if "@max_cardinality" in value:
            hi = _int_field(value["@max_cardinality"], "@max_cardinality")
        return Range(kind, cls, lo, hi)
    if kind == "List":
        return Range("List", cls, 0, INF)
    if kind == "Array":
        dims = value.get("@dimensions", 1)
        return Range("Array", cls, 0, INF, _int_field(dims, "@dimensions"))
    raise RangeSyntaxError(f"unknown range type {kind!r}")


def range_to_json(r: Range) -> Any:
    """The stored/GET form of a range."""
    if r.kind == "one":
        return r.cls
    if r.kind == "Optional":
        return {"@type": "Optional", "@class": r.cls}
    if r.kind == "List":
        return {"@type": "List", "@class": r.cls}
    if r.kind == "Array":
        out: dict[str, Any] = {"@type": "Array", "@class": r.cls}
        if r.dimensions != 1:
            out["@dimensions"] = r.dimensions
        return out
    out = {"@type": r.kind, "@class": r.cls}
    if r.kind == "Cardinality" or r.min != 0:
        out["@min_cardinality"] = r.min
    if r.max != INF:
        out["@max_cardinality"] = int(r.max)
    return out


def is_weakening(old: Range, new: Range, class_subsumed: Callable[[str, str], bool]) -> bool:
    """True if every value set valid under ``old`` is valid under ``new``.

    ``class_subsumed(a, b)``: a is b or a subclass of b (or base-type subsumption).
    """
    if old == new:
        return True
    if not (old.cls == new.cls or class_subsumed(old.cls, new.cls)):
        return False
    if old.set_like and new.set_like:
        return new.min <= old.min and old.max <= new.max
    return old.kind == new.kind and old.dimensions == new.dimensions


def combine(ranges: list[Range], class_subsumed: Callable[[str, str], bool]) -> Range | None:
    """The effective range of several declarations: equal ones collapse, the stronger wins.

    Returns None if two declarations are incomparable (a diamond-property violation).
    """
    best = ranges[0]
    for r in ranges[1:]:
        if r == best:
            continue
        if is_weakening(r, best, class_subsumed):
            best = r
        elif not is_weakening(best, r, class_subsumed):
            return None
    return best
