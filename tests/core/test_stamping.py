"""The stamping rule: create stamps both halves, update keeps the creator, client audit fields never survive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from core.audit_fields import AUDIT_FIELDS
from core.stamping import stamp_create, stamp_update, without_audit_fields, xsd_datetime


@dataclass(frozen=True)
class Who:
    id: str
    username: str | None


ALICE = Who("u-123", "alice")
BOB = Who("u-456", "bob")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
FORGED = {f: "forged" for f in AUDIT_FIELDS}


def test_create_sets_all_six_from_one_instant_and_drops_forged_values() -> None:
    doc = stamp_create({"@type": "ObjectType", "name": "x", **FORGED}, ALICE, T0)
    assert doc == {
        "@type": "ObjectType",
        "name": "x",
        "_created_by": "u-123",
        "_created_by_username": "alice",
        "_created_at": "2026-01-02T03:04:05.678Z",
        "_updated_by": "u-123",
        "_updated_by_username": "alice",
        "_updated_at": "2026-01-02T03:04:05.678Z",
    }


def test_update_keeps_created_from_the_stored_document_whatever_the_client_sent() -> None:
    stored = stamp_create({"@type": "ObjectType", "name": "x"}, ALICE, T0)
    later = T0 + timedelta(hours=1)
    doc = stamp_update({"@type": "ObjectType", "name": "y", **FORGED}, stored, BOB, later)
    assert {k: doc[k] for k in ("_created_by", "_created_by_username", "_created_at")} == {
        "_created_by": "u-123",
        "_created_by_username": "alice",
        "_created_at": "2026-01-02T03:04:05.678Z",
    }
    assert (doc["_updated_by"], doc["_updated_by_username"], doc["_updated_at"]) == (
        "u-456",
        "bob",
        "2026-01-02T04:04:05.678Z",
    )
    assert doc["name"] == "y"


def test_update_of_a_document_from_before_the_migration_invents_no_creator() -> None:
    doc = stamp_update({"name": "y", "_created_by": "forged"}, {"name": "x"}, BOB, T0)
    assert not any(key.startswith("_created") for key in doc)
    assert doc["_updated_by"] == "u-456"


def test_no_username_means_no_username_field() -> None:
    doc = stamp_create({}, Who("svc_deployment", None), T0)
    assert "_created_by_username" not in doc and doc["_created_by"] == "svc_deployment"


def test_xsd_datetime_is_utc() -> None:
    assert xsd_datetime(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-01T10:00:00.000Z"
    assert without_audit_fields({"a": 1, **FORGED}) == {"a": 1}
