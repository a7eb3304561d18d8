"""Schema snapshots round-trip, and differences between schema graphs are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.schema_documents import schema_differences
from core.schema_snapshot import SchemaSnapshot, take

CONTEXT = {"@type": "@context", "@base": "terminusdb:///data/", "@schema": "terminusdb:///schema#"}
PERSON = {"@type": "Class", "@id": "Person", "name": "xsd:string"}


def test_snapshot_round_trip(tmp_path: Path) -> None:
    snapshot = take("oms", "main", "abc123", [CONTEXT, PERSON])
    path = snapshot.save(tmp_path, "0123456789")
    assert path.name.startswith("schema_snapshot_oms_") and path.name.endswith("_01234567.json")
    assert SchemaSnapshot.load(path) == snapshot


def test_loading_something_else_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SchemaSnapshot.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"database": "oms"}')
    with pytest.raises(ConfigError, match="not a schema snapshot"):
        SchemaSnapshot.load(bad)


def test_differences_ignore_order_and_name_what_changed() -> None:
    assert schema_differences([CONTEXT, PERSON], [PERSON, CONTEXT]) == []
    patched = {**PERSON, "_created_by": {"@type": "Optional", "@class": "xsd:string"}}
    extra = {"@type": "Class", "@id": "Extra"}
    assert schema_differences([CONTEXT, PERSON], [CONTEXT, patched, extra]) == [
        "Extra: unexpected",
        "Person: +_created_by",
    ]
    assert schema_differences([CONTEXT, PERSON], [CONTEXT]) == ["Person: missing"]
