"""House rules the next flows rely on: record-keeping lives once, in tasks.run_record; one of each building block."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sources(*folders: str) -> dict[Path, str]:
    return {path: path.read_text(encoding="utf-8") for folder in folders for path in (ROOT / folder).rglob("*.py")}


def test_flows_keep_no_books_of_their_own() -> None:
    for path, text in _sources("flows").items():
        assert "save_report(" not in text, f"{path.name}: the report is saved by tasks.run_record"
        assert not re.search(r"\.status = ", text), f"{path.name}: status transitions belong to the run's books"
        assert "TypeEntry(" not in text and "MigrationRunRecord" not in text, f"{path.name}: conversions live in core"


def test_one_of_each_building_block() -> None:
    sources = _sources("core", "tasks", "flows", "cli")
    definitions = {
        "TypeState": r"^TypeState\b",
        "a UTC now": r"^def utc_?now\(",
        "a UTC formatter": r"\.isoformat\(\)\.replace\(",
        "an optimistic-concurrency loop": r"for attempt in range\(",
    }
    for what, pattern in definitions.items():
        found = [path.name for path, text in sources.items() if re.search(pattern, text, re.MULTILINE)]
        assert len(found) == 1, f"{what} is defined in {found}"
