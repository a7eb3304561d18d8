"""UTC time, written one way: every timestamp oms-audit stores or names a file after comes from here."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC (naive values are taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_utc(value: datetime, *, seconds_only: bool = False) -> str:
    """An ISO-8601 / xsd:dateTime literal in UTC ending in ``Z`` (``seconds_only`` drops the fraction)."""
    value = as_utc(value)
    if seconds_only:
        value = value.replace(microsecond=0)
    return value.isoformat().replace("+00:00", "Z")


def parse_utc(value: str) -> datetime:
    """Read an ISO-8601 / xsd:dateTime literal back as an aware datetime (UTC when it has no offset)."""
    return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def file_stamp(value: datetime) -> str:
    """``YYYYmmdd_HHMMSS`` in UTC, as report and snapshot file names carry it."""
    return f"{as_utc(value):%Y%m%d_%H%M%S}"
