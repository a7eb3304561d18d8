"""Schema analysis speed on generated schemas: 5,000 and 50,000 classes with deep, partly multiple inheritance.

Goals: 5,000 classes analysed in < 0.5 s, and 10x the classes in <= 11x the time (linear scaling).
Run: ``uv run python bench/bench_analysis.py`` — prints a markdown table.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.audit_fields import AUDIT_FIELDS  # noqa: E402
from core.migration_plan import build_plan  # noqa: E402
from core.schema_analysis import SchemaAnalysis, analyze_schema  # noqa: E402

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
    return schema, counts


def measure(classes: int, repeats: int) -> tuple[float, SchemaAnalysis]:
    schema, counts = generate(classes)
    timings = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = analyze_schema(schema, counts, head_commit="bench")
        timings.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(timings), result


def main() -> int:
    rows = []
    for classes, repeats in ((5_000, 7), (50_000, 3)):
        seconds, analysis = measure(classes, repeats)
        counts = analysis.action_counts()
        started = time.perf_counter()
        plan = build_plan(analysis, database="bench", branch="main", seconds_per_call=0.02)
        plan.to_markdown()
        plan_seconds = time.perf_counter() - started
        rows.append((classes, seconds, plan_seconds, counts, len(plan.operations)))
    small, large = rows[0][1], rows[1][1]
    ratio = large / small
    print("| classes | analysis (median) | per class | plan + markdown | patch | covered | already | skip |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for classes, seconds, plan_seconds, counts, _ in rows:
        values = [counts[action] for action in counts]
        print(
            f"| {classes:,} | {seconds:.3f} s | {seconds / classes * 1e6:.1f} µs | {plan_seconds:.3f} s | "
            + " | ".join(f"{value:,}" for value in values)
            + " |"
        )
    print()
    small_ok = small < GOAL_SECONDS
    ratio_ok = ratio <= GOAL_RATIO
    print(f"- 5,000 classes: {small:.3f} s (goal < {GOAL_SECONDS} s): {'met' if small_ok else 'NOT MET'}")
    print(f"- 10x classes: {ratio:.1f}x the time (goal <= {GOAL_RATIO:g}x): {'met' if ratio_ok else 'NOT MET'}")
    return 0 if small_ok and ratio_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
