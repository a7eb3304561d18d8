"""The write freeze flag in the metadata database: set, read, lifted — also when the frozen work fails."""

from __future__ import annotations

import pytest

from core.settings import TerminusSettings
from core.write_freeze import clear_write_freeze, frozen_writes, read_write_freeze, set_write_freeze


def test_set_read_and_clear(settings: TerminusSettings) -> None:
    assert read_write_freeze(settings) is None
    state = set_write_freeze(settings, reason="schema change", set_by="ops")
    seen = read_write_freeze(settings)
    assert seen is not None and (seen.reason, seen.set_by, seen.database) == ("schema change", "ops", settings.database)
    assert seen.set_at.replace(microsecond=0) == state.set_at.replace(microsecond=0)
    assert clear_write_freeze(settings) is True
    assert read_write_freeze(settings) is None
    assert clear_write_freeze(settings) is False


def test_frozen_writes_lifts_the_freeze_when_the_body_fails(settings: TerminusSettings) -> None:
    with (
        pytest.raises(RuntimeError, match="schema change failed"),
        frozen_writes(settings, reason="rollback", set_by="flow", settle_seconds=0),
    ):
        assert read_write_freeze(settings) is not None
        raise RuntimeError("schema change failed")
    assert read_write_freeze(settings) is None


def test_the_freeze_is_per_database(settings: TerminusSettings) -> None:
    other = settings.model_copy(update={"database": "another_ontology"})
    set_write_freeze(settings, reason="rollback", set_by="flow")
    try:
        assert read_write_freeze(other) is None
    finally:
        clear_write_freeze(settings)
