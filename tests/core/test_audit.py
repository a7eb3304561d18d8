"""Audit events: the DLQ line format of DESIGN §6 round-trips, unknown keys included."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.audit import Actor, AuditEvent, LastError

DESIGN_LINE = (
    '{"event_id": "7d0c1a52-4b7e-4f7e-9a51-3c2f0e9d1a11", "occurred_at": "2026-11-30T22:15:03.120Z", '
    '"action": "create", "resource_type": "ObjectType", "resource_id": "ObjectType/x", '
    '"actor": {"id": "u-123", "username": "alice", "kind": "user"}, "success": true, '
    '"details": {"fields": ["name"]}, "dlq_type": "fallback", "enqueued_at": "2026-11-30T22:15:04Z", '
    '"attempts": 1, "last_error": {"type": "ConnectTimeout", "message": "timed out", "at": "2026-11-30T22:15:04Z"}, '
    '"tenant": "acme", "trace": {"span": "abc"}}'
)


def test_design_line_parses_and_round_trips_with_unknown_keys() -> None:
    event = AuditEvent.from_json_line(DESIGN_LINE)
    assert event.actor == Actor(id="u-123", username="alice", kind="user")
    assert event.last_error == LastError(
        type="ConnectTimeout", message="timed out", at=datetime(2026, 11, 30, 22, 15, 4, tzinfo=UTC)
    )
    assert event.attempts == 1 and event.dlq_type == "fallback"
    assert event.model_extra == {"tenant": "acme", "trace": {"span": "abc"}}

    again = json.loads(AuditEvent.from_json_line(event.to_json_line()).to_json_line())
    assert again == json.loads(event.to_json_line())
    assert again["tenant"] == "acme" and again["trace"] == {"span": "abc"}
    assert again["occurred_at"] == "2026-11-30T22:15:03.120000Z"
    assert "\n" not in event.to_json_line()


def test_times_with_an_offset_compare_right_and_are_written_back_in_utc() -> None:
    line = json.loads(DESIGN_LINE)
    line["occurred_at"] = "2026-12-01T00:15:03+02:00"
    event = AuditEvent.model_validate(line)
    assert event.occurred_at == datetime(2026, 11, 30, 22, 15, 3, tzinfo=UTC)
    assert json.loads(event.to_json_line())["occurred_at"] == "2026-11-30T22:15:03Z"


def test_new_event_gets_a_fresh_uuid_and_now() -> None:
    before = datetime.now(UTC)
    first = AuditEvent.new(action="update", actor=Actor(id="svc_deployment", kind="service"), resource_type="T")
    second = AuditEvent.new(action="update", actor=Actor(id="svc_deployment", kind="service"))
    assert first.event_id != second.event_id and len(first.event_id) == 36
    assert before <= first.occurred_at <= datetime.now(UTC)
    assert first.attempts == 0 and first.last_error is None


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": ""},
        {"occurred_at": "yesterday"},
        {"occurred_at": "2026-11-30T22:15:03"},  # no offset: ambiguous, refused
        {"actor": {"id": "u", "kind": "robot"}},
        {"attempts": -1},
    ],
)
def test_invalid_fields_are_refused_with_the_field_named(change: dict) -> None:
    line = {**json.loads(DESIGN_LINE), **change}
    with pytest.raises(ValidationError) as caught:
        AuditEvent.model_validate(line)
    assert next(iter(change)) in str(caught.value)


def test_naive_times_are_not_guessed() -> None:
    with pytest.raises(ValidationError):
        AuditEvent.new(action="create", actor=Actor(id="u"), enqueued_at=datetime(2026, 1, 1))
    aware = AuditEvent.new(action="create", actor=Actor(id="u"), enqueued_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert aware.enqueued_at is not None
