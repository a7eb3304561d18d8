"""Migration runs are kept as MigrationRun documents: round trip, ordering, per-type progress."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core.errors import DocumentNotFound
from core.metadata_db import MIGRATIONS_BRANCH, metadata_gateway
from core.run_history import (
    MigrationRunRecord,
    get_run,
    list_runs,
    record_run,
    run_document_id,
    update_run,
    update_type_state,
)
from core.settings import TerminusSettings
from core.terminus import TerminusGateway

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _run(run_id: str = "run-1", **overrides: Any) -> MigrationRunRecord:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "database": "oms",
        "branch": "main",
        "mode": "execute",
        "status": "running",
        "triggered_by": "alice",
        "fingerprint": "f" * 64,
        "head_commit_before": "a" * 31,
        "type_states": {"Person": "pending", "Organisation": "pending"},
        "started_at": T0,
    }
    return MigrationRunRecord(**{**fields, **overrides})


def test_a_run_round_trips(meta: TerminusGateway) -> None:
    run = _run(
        approved_by="bob",
        approval_comment="looks right: 2 types",
        head_commit_after="b" * 31,
        report_path="reports/migration_report_audit_fields_20240501_120000.json",
        finished_at=T0 + timedelta(minutes=3),
        error=None,
        status="succeeded",
        type_states={"Person": "applied", "Organisation": "applied"},
    )
    record_run(meta, run)
    assert get_run(meta, "run-1") == run


def test_type_states_are_stored_as_json_text(meta: TerminusGateway) -> None:
    record_run(meta, _run())
    doc, _ = meta.get_document(run_document_id("run-1"), branch=MIGRATIONS_BRANCH)
    assert isinstance(doc["type_states"], str)
    assert "approved_by" not in doc  # a missing Optional is omitted, not stored as null


def test_a_missing_run_is_none(meta: TerminusGateway) -> None:
    assert get_run(meta, "nope") is None


def test_recording_again_replaces_the_run(meta: TerminusGateway) -> None:
    record_run(meta, _run(status="awaiting_approval"))
    record_run(meta, _run(status="rejected", approved_by="bob", approval_comment="not today"))
    stored = get_run(meta, "run-1")
    assert stored is not None
    assert (stored.status, stored.approved_by, stored.approval_comment) == ("rejected", "bob", "not today")


def test_runs_are_listed_newest_first(meta: TerminusGateway) -> None:
    starts = {"run-b": T0 + timedelta(hours=2), "run-a": T0, "run-c": T0 + timedelta(hours=1)}
    for run_id, started_at in starts.items():
        record_run(meta, _run(run_id, started_at=started_at))
    record_run(meta, _run("run-other-db", database="oms_staging", started_at=T0 + timedelta(hours=5)))

    assert [r.run_id for r in list_runs(meta)] == ["run-other-db", "run-b", "run-c", "run-a"]
    assert [r.run_id for r in list_runs(meta, database="oms")] == ["run-b", "run-c", "run-a"]
    assert [r.run_id for r in list_runs(meta, database="oms", limit=2)] == ["run-b", "run-c"]
    assert list_runs(meta, database="unknown") == []


def test_list_refuses_a_limit_below_one(meta: TerminusGateway) -> None:
    with pytest.raises(ValueError, match="limit"):
        list_runs(meta, limit=0)


def test_type_state_updates_keep_the_other_types(meta: TerminusGateway) -> None:
    record_run(meta, _run())

    update_type_state(meta, "run-1", "Person", "applying")
    updated = update_type_state(meta, "run-1", "Person", "applied")
    update_type_state(meta, "run-1", "Organisation", "failed")

    assert updated.type_states == {"Person": "applied", "Organisation": "pending"}
    stored = get_run(meta, "run-1")
    assert stored is not None
    assert stored.type_states == {"Person": "applied", "Organisation": "failed"}
    assert stored.status == "running"


def test_concurrent_type_updates_lose_nothing(settings: TerminusSettings, meta: TerminusGateway) -> None:
    types = [f"Type{n}" for n in range(6)]
    record_run(meta, _run(type_states=dict.fromkeys(types, "pending")))
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(types))

    def apply(type_name: str) -> None:
        try:
            with metadata_gateway(settings) as gateway:
                barrier.wait()
                update_type_state(gateway, "run-1", type_name, "applied")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(name,)) for name in types]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = get_run(meta, "run-1")
    assert stored is not None
    assert stored.type_states == dict.fromkeys(types, "applied")


def test_an_unknown_type_state_is_refused(meta: TerminusGateway) -> None:
    record_run(meta, _run())
    with pytest.raises(ValidationError):
        update_type_state(meta, "run-1", "Person", "done")  # type: ignore[arg-type]
    stored = get_run(meta, "run-1")
    assert stored is not None and stored.type_states["Person"] == "pending"


def test_update_run_changes_the_given_fields(meta: TerminusGateway) -> None:
    record_run(meta, _run())
    finished = T0 + timedelta(minutes=5)

    update_run(meta, "run-1", status="failed", finished_at=finished, error="Person: HTTP 500")

    stored = get_run(meta, "run-1")
    assert stored is not None
    assert (stored.status, stored.finished_at, stored.error) == ("failed", finished, "Person: HTTP 500")
    assert stored.triggered_by == "alice"


def test_update_run_refuses_unknown_fields_and_the_id(meta: TerminusGateway) -> None:
    record_run(meta, _run())
    with pytest.raises(ValueError, match="colour"):
        update_run(meta, "run-1", colour="blue")
    with pytest.raises(ValueError, match="run_id"):
        update_run(meta, "run-1", run_id="run-2")


def test_updating_a_missing_run_says_so(meta: TerminusGateway) -> None:
    with pytest.raises(DocumentNotFound):
        update_type_state(meta, "nope", "Person", "applied")


def test_naive_datetimes_are_taken_as_utc() -> None:
    run = _run(started_at=datetime(2024, 5, 1, 12, 0))
    assert run.started_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_a_bad_mode_is_refused() -> None:
    with pytest.raises(ValidationError, match="mode"):
        _run(mode="sideways")
