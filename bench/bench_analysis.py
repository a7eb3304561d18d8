"""Schema analysis speed on generated schemas: 5,000 and 50,000 classes with deep, partly multiple inheritance.

Goals: 5,000 classes analysed in < 0.5 s, and 10x the classes in <= 11x the time (linear scaling).
Run: ``uv run python bench/bench_analysis.py`` — prints a markdown table.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
from typing import Any

from core.audit_fields import AUDIT_FIELDS
from core.migration_plan import build_plan
from core.schema_analysis import SchemaAnalysis, analyze_schema

GROUP = 100  # classes per inheritance tree; chains inside a tree go up to this deep
MIXINS = 20
GOAL_SECONDS = 0.5
GOAL_RATIO = 11.0


def generate(classes: int, seed: int = 1) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A schema of ``classes`` document classes (+ mixins, enums, subdocuments) and its document counts.

    Each tree of GROUP classes is mostly one long chain (70 % of classes extend the previous one), the rest
    branch off an earlier class of the tree; 5 % also inherit a mixin and 3 % a second class of their tree
    (diamonds). Some classes already declare a few audit fields.
    """
    rng = random.Random(seed)
    schema: list[dict[str, Any]] = [
        {"@type": "@context", "@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
    ]
    schema += [{"@type": "Class", "@id": f"Mixin{m}", "@abstract": []} for m in range(MIXINS)]
    schema += [{"@type": "Enum", "@id": f"Enum{e}", "@value": ["a", "b", "c"]} for e in range(classes // 100)]
    counts: dict[str, int] = {}
    audit = list(AUDIT_FIELDS)
    for index in range(classes):
        group, position = divmod(index, GROUP)
        name = f"C{index}"
        doc: dict[str, Any] = {
            "@type": "Class",
            "@id": name,
            "name": "xsd:string",
            "size": {"@type": "Optional", "@class": "xsd:integer"},
            "tags": {"@type": "Set", "@class": "xsd:string"},
        }
        parents: list[str] = []
        if position:
            earlier = index - 1 if rng.random() < 0.7 else group * GROUP + rng.randrange(position)
            parents.append(f"C{earlier}")
            if rng.random() < 0.03 and position > 1:
                other = f"C{group * GROUP + rng.randrange(position)}"
                if other not in parents:
                    parents.append(other)
        if rng.random() < 0.05:
            parents.append(f"Mixin{rng.randrange(MIXINS)}")
        if parents:
            doc["@inherits"] = parents[0] if len(parents) == 1 else parents
        if position == 0 and group % 2 == 1:
            doc["@abstract"] = []
        if rng.random() < 0.02:
            for field in rng.sample(audit, 2):
                doc[field] = {"@type": "Optional", "@class": AUDIT_FIELDS[field]}
        if rng.random() < 0.03:
            doc["@subdocument"] = []
            doc["@key"] = {"@type": "Random"}
        schema.append(doc)
        counts[name] = rng.randrange(0, 1000)
    rng.shuffle(schema)  # GET order is not topological in general
    # In production the schema is parsed from TerminusDB's JSON reply, so its objects lie in memory in list
    # order; parse it the same way here rather than walking objects scattered by the shuffle above.
    return json.loads(json.dumps(schema)), counts


def floor_pass(schema: list[dict[str, Any]], counts: dict[str, int]) -> list[dict[str, Any]]:
    """The least any analysis must do: read each document, resolve its parents, emit one small record each.

    Its own 10x ratio shows how this machine scales for touching N Python objects (memory hierarchy,
    allocator), which is the floor for the analysis's ratio.
    """
    index = {doc["@id"]: position for position, doc in enumerate(schema) if "@id" in doc}
    records = []
    for doc in schema:
        inherits = doc.get("@inherits", ())
        parents = [index.get(p) for p in ([inherits] if isinstance(inherits, str) else inherits)]
        records.append({"name": doc.get("@id"), "parents": parents, "count": counts.get(doc.get("@id", ""), 0)})
    return records


def timed(function: Any, repeats: int) -> float:
    """Median seconds, with the cyclic collector paused as the analysis itself does."""
    timings = []
    for _ in range(repeats):
        gc.disable()
        try:
            started = time.perf_counter()
            function()
            timings.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return statistics.median(timings)


def measure(classes: int, repeats: int) -> tuple[float, float, SchemaAnalysis]:
    schema, counts = generate(classes)
    floor = timed(lambda: floor_pass(schema, counts), repeats)
    timings = []
    result = None
    for _ in range(repeats):
        result = None  # free the previous result outside the timed region
        started = time.perf_counter()
        result = analyze_schema(schema, counts, head_commit="bench")
        timings.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(timings), floor, result


def main() -> int:
    rows = []
    for classes, repeats in ((5_000, 7), (50_000, 3)):
        seconds, floor, analysis = measure(classes, repeats)
        counts = analysis.action_counts()
        started = time.perf_counter()
        plan = build_plan(analysis, database="bench", branch="main", seconds_per_call=0.02)
        plan.to_markdown()
        plan_seconds = time.perf_counter() - started
        rows.append((classes, seconds, plan_seconds, counts, floor))
    small, large = rows[0][1], rows[1][1]
    ratio = large / small
    floor_ratio = rows[1][4] / rows[0][4]
    print(
        "| classes | analysis (median) | per class | floor pass | plan + markdown | patch | covered | already | skip |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for classes, seconds, plan_seconds, counts, floor in rows:
        values = [counts[action] for action in counts]
        print(
            f"| {classes:,} | {seconds:.3f} s | {seconds / classes * 1e6:.1f} µs | {floor:.3f} s "
            f"| {plan_seconds:.3f} s | " + " | ".join(f"{value:,}" for value in values) + " |"
        )
    print()
    small_ok = small < GOAL_SECONDS
    ratio_ok = ratio <= GOAL_RATIO
    print(f"- 5,000 classes: {small:.3f} s (goal < {GOAL_SECONDS} s): {'met' if small_ok else 'NOT MET'}")
    print(f"- 10x classes: {ratio:.1f}x the time (goal <= {GOAL_RATIO:g}x): {'met' if ratio_ok else 'NOT MET'}")
    print(f"- floor pass on this machine: 10x objects took {floor_ratio:.1f}x the time")
    return 0 if small_ok and ratio_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
