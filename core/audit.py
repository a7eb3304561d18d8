"""Audit events and where they are stored (no delivery policy: that is the emitter's and the sweep's job).

An :class:`AuditEvent`'s JSON is exactly one line of the dead-letter queue (DESIGN §6). Other applications
write those lines too, so unknown keys are kept (``extra="allow"``) and survive a round trip.

An :class:`AuditSink` stores events idempotently on ``event_id``: delivering an event twice stores it once,
which is what lets the emitter retry and the sweep replay after a crash. Two sinks:

- :class:`MetadataAuditSink`: ``AuditEvent`` documents in the metadata database (``OMS_AUDIT_META_DB``);
- :class:`HttpAuditSink`: ``POST {AUDIT_BACKEND_URL}`` with ``{"events": [...]}``; the backend answers
  ``200 {"rejected": {event_id: reason}}`` (empty or missing = all stored).

``open_audit_sink(...)`` picks the HTTP backend when ``AUDIT_BACKEND_URL`` is set, else the metadata database.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from core.errors import AuditSinkUnavailable, OmsAuditError, TerminusError, is_transient
from core.metadata_db import (
    AUDIT_EVENT,
    METADATA_AUTHOR,
    METADATA_BRANCH,
    ensure_metadata_db,
    metadata_gateway,
)
from core.settings import AuditSinkSettings, TerminusSettings, load_settings
from core.timestamps import format_utc, parse_utc

__all__ = [
    "Actor",
    "AuditEvent",
    "AuditSink",
    "HttpAuditSink",
    "JsonLineSink",
    "LastError",
    "MetadataAuditSink",
    "open_audit_sink",
]


def _utc_text(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, as the DLQ line format says."""
    return format_utc(value)


class Actor(BaseModel):
    """Who did it: a verified principal, a service account, or nobody (a denied anonymous request)."""

    model_config = ConfigDict(extra="allow")

    id: str
    username: str | None = None
    kind: Literal["user", "service", "anonymous"] = "user"


class LastError(BaseModel):
    """Why the last delivery attempt failed (the sweep's error-pattern table groups on ``type``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    message: str
    at: AwareDatetime

    @field_serializer("at")
    def _dump_utc(self, value: datetime) -> str:
        return _utc_text(value)


class AuditEvent(BaseModel):
    """One audit event; its JSON is one DLQ line. Unknown keys are kept."""

    model_config = ConfigDict(extra="allow")

    event_id: str = Field(min_length=1)
    occurred_at: AwareDatetime
    action: str = Field(min_length=1)
    resource_type: str | None = None
    resource_id: str | None = None
    actor: Actor
    success: bool = True
    details: dict[str, Any] = Field(default_factory=dict)
    dlq_type: str | None = None
    enqueued_at: AwareDatetime | None = None
    attempts: int = Field(0, ge=0)
    last_error: LastError | None = None

    # Times keep the offset they were written with (parsing stays cheap: a sweep reads millions of lines);
    # they compare correctly whatever the offset, and are written back, and stored, in UTC.
    @field_serializer("occurred_at", "enqueued_at")
    def _dump_utc(self, value: datetime | None) -> str | None:
        return None if value is None else _utc_text(value)

    @classmethod
    def new(
        cls,
        *,
        action: str,
        actor: Actor,
        resource_type: str | None = None,
        resource_id: str | None = None,
        success: bool = True,
        details: dict[str, Any] | None = None,
        **extra: Any,
    ) -> AuditEvent:
        """A fresh event: new uuid, occurred now."""
        return cls(
            event_id=str(uuid.uuid4()),
            occurred_at=datetime.now(UTC),
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            actor=actor,
            success=success,
            details=details or {},
            **extra,
        )

    def to_json_line(self) -> str:
        """The event as one JSON line (no trailing newline); unknown keys included."""
        return self.model_dump_json()

    @classmethod
    def from_json_line(cls, line: str | bytes) -> AuditEvent:
        """Parse one DLQ line; raises ``ValueError`` (pydantic's ValidationError) saying what is wrong."""
        return cls.model_validate_json(line)

    def age_reference(self) -> datetime:
        """When the event entered the DLQ (its occurrence when a foreign writer left ``enqueued_at`` out)."""
        return self.enqueued_at or self.occurred_at


@runtime_checkable
class AuditSink(Protocol):
    """Stores audit events, idempotently on ``event_id``."""

    def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]:
        """Store every event; returns ``{event_id: reason}`` for those rejected individually (empty = all stored).

        An event already stored counts as stored. Raises ``AuditSinkUnavailable`` when the sink cannot be
        reached at all (transient: retry later, the events are not lost by the caller).
        """
        ...

    def query(
        self,
        *,
        limit: int,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first; ``next_cursor`` continues after the last event returned (None at the end)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class JsonLineSink(Protocol):
    """A sink that takes events as JSON text (the HTTP backend). The sweep hands such a sink the DLQ lines
    it validated, as they are, instead of keeping a batch of parsed events and serialising each one again:
    a batch of 500 parsed events is megabytes of objects that no CPU cache holds (bench/bench_dlq.py)."""

    def deliver_json_lines(self, lines: Sequence[bytes], event_ids: Sequence[str]) -> dict[str, str]:
        """Store the events whose JSON lines (each a valid :class:`AuditEvent`, ``event_ids[i]`` the
        ``event_id`` of ``lines[i]``, no id twice) are given; the contract of :meth:`AuditSink.deliver`."""
        ...


# ----------------------------------------------------------------------------------------------------
# metadata database

_KNOWN_FIELDS = frozenset(AuditEvent.model_fields) - {"dlq_type", "enqueued_at", "attempts", "last_error"}


def event_document(event: AuditEvent, *, recorded_at: datetime) -> dict[str, Any]:
    """The ``AuditEvent`` document for ``event``; keys the schema lacks go to ``extra`` as JSON text."""
    extra = dict(event.model_extra or {})
    if event.actor.model_extra:
        extra["actor"] = event.actor.model_extra
    doc: dict[str, Any] = {
        "@type": AUDIT_EVENT,
        "event_id": event.event_id,
        "occurred_at": format_utc(event.occurred_at),
        "action": event.action,
        "actor_id": event.actor.id,
        "actor_kind": event.actor.kind,
        "success": event.success,
        "recorded_at": format_utc(recorded_at),
    }
    if event.resource_type is not None:
        doc["resource_type"] = event.resource_type
    if event.resource_id is not None:
        doc["resource_id"] = event.resource_id
    if event.actor.username is not None:
        doc["actor_username"] = event.actor.username
    if event.details:
        doc["details"] = json.dumps(event.details, separators=(",", ":"), ensure_ascii=False, default=str)
    if extra:
        doc["extra"] = json.dumps(extra, separators=(",", ":"), ensure_ascii=False, default=str)
    return doc


def event_from_document(doc: dict[str, Any]) -> AuditEvent:
    """Read an ``AuditEvent`` document back as the event that was stored."""
    extra = json.loads(doc["extra"]) if doc.get("extra") else {}
    actor_extra = extra.pop("actor", {}) if isinstance(extra.get("actor"), dict) else {}
    return AuditEvent(
        event_id=doc["event_id"],
        occurred_at=parse_utc(doc["occurred_at"]),
        action=doc["action"],
        resource_type=doc.get("resource_type"),
        resource_id=doc.get("resource_id"),
        actor=Actor(id=doc["actor_id"], username=doc.get("actor_username"), kind=doc["actor_kind"], **actor_extra),
        success=doc["success"],
        details=json.loads(doc["details"]) if doc.get("details") else {},
        **extra,
    )


def batch_documents(events: Sequence[AuditEvent]) -> list[dict[str, Any]]:
    """The documents of one batch commit, all recorded at the same instant."""
    now = datetime.now(UTC)
    return [event_document(e, recorded_at=now) for e in events]


def batch_message(events: Sequence[AuditEvent]) -> str:
    return f"Audit events ({len(events)})"


class BatchRefusal(NamedTuple):
    """What to do with a batch TerminusDB did not store: store ``retry``'s parts, each in its own commit,
    and report ``refused`` (``{event_id: reason}``) as rejected."""

    retry: list[list[AuditEvent]]
    refused: dict[str, str]


def split_refused_batch(events: Sequence[AuditEvent], exc: TerminusError, *, database: str) -> BatchRefusal:
    """The metadata sinks' rule (sync and async alike) for a batch commit that failed with ``exc``.

    A failure that is not about the documents (transient, credentials refused, no database) raises
    :class:`~core.errors.AuditSinkUnavailable`: no event is stored, all stay with the caller (the DLQ).
    Otherwise TerminusDB refused the batch for what is in it: a single event is refused with the reason,
    a larger batch is split in halves to retry, so that only the events it refuses are refused.
    """
    if is_transient(exc) or exc.status in (401, 403, 404):
        raise metadata_unavailable(database, exc) from None
    if len(events) == 1:
        return BatchRefusal([], {events[0].event_id: str(exc)})
    half = len(events) // 2
    return BatchRefusal([list(events[:half]), list(events[half:])], {})


def metadata_unavailable(database: str, exc: TerminusError) -> AuditSinkUnavailable:
    return AuditSinkUnavailable(f"the metadata database '{database}'", reason=str(exc))


class MetadataAuditSink:
    """``AuditEvent`` documents in the metadata database, keyed on ``event_id`` (a replace-or-create per
    batch, one commit, so storing an event again changes nothing but ``recorded_at``)."""

    def __init__(self, settings: TerminusSettings) -> None:
        self._settings = settings
        self._gateway = metadata_gateway(settings)
        self._ready = False

    def close(self) -> None:
        self._gateway.close()

    def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]:
        unique = list({event.event_id: event for event in events}.values())
        if not unique:
            return {}
        self._ensure_ready()
        return self._store(unique)

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        try:
            ensure_metadata_db(self._gateway, self._settings)
        except TerminusError as exc:
            raise self._unavailable(exc) from None
        self._ready = True

    def _store(self, events: list[AuditEvent]) -> dict[str, str]:
        """One commit for the batch; what TerminusDB refuses is split by :func:`split_refused_batch`."""
        try:
            self._gateway.replace_documents(
                batch_documents(events),
                author=METADATA_AUTHOR,
                message=batch_message(events),
                create=True,
                branch=METADATA_BRANCH,
            )
            return {}
        except TerminusError as exc:
            retry, refused = split_refused_batch(events, exc, database=self._settings.meta_database)
        for part in retry:
            refused |= self._store(part)
        return refused

    def _unavailable(self, exc: TerminusError) -> AuditSinkUnavailable:
        return metadata_unavailable(self._settings.meta_database, exc)

    def query(
        self,
        *,
        limit: int,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        self._ensure_ready()
        try:
            return page_of_events(
                self._iter_docs(), limit=limit, actor=actor, resource_type=resource_type, since=since, cursor=cursor
            )
        except TerminusError as exc:
            raise self._unavailable(exc) from None

    def _iter_docs(self) -> Iterator[dict[str, Any]]:
        return self._gateway.iter_documents(doc_type=AUDIT_EVENT, branch=METADATA_BRANCH)


def page_of_events(
    documents: Iterable[dict[str, Any]],
    *,
    limit: int,
    actor: str | None = None,
    resource_type: str | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """One page of the audit log from ``AuditEvent`` documents (any order): newest first, ``limit`` of them,
    and the cursor that continues after the page's last event. Keeps at most ``limit + 1`` in memory, so a
    sink that cannot filter by time reads its matches once, whatever their number."""
    after = _decode_cursor(cursor)
    wanted = (
        (stamp, doc["event_id"], doc)
        for doc in documents
        if (actor is None or doc.get("actor_id") == actor)
        and (resource_type is None or doc.get("resource_type") == resource_type)
        for stamp in (parse_utc(doc["occurred_at"]),)
        if (since is None or stamp >= since) and (after is None or (stamp, doc["event_id"]) < after)
    )
    page = heapq.nlargest(limit + 1, wanted, key=lambda item: (item[0], item[1]))
    last = page[limit - 1] if len(page) > limit else None
    next_cursor = _encode_cursor(last[2]["occurred_at"], last[1]) if last is not None else None
    return [event_from_document(item[2]) for item in page[:limit]], next_cursor


def _encode_cursor(occurred_at: str, event_id: str) -> str:
    return f"{occurred_at}|{event_id}"


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    stamp, sep, event_id = cursor.partition("|")
    try:
        if not sep:
            raise ValueError(cursor)
        return parse_utc(stamp), event_id
    except ValueError:
        raise InvalidCursor(cursor) from None


class InvalidCursor(OmsAuditError, ValueError):
    """The cursor was not one this sink handed out."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"Invalid cursor {cursor[:80]!r}: pass back the next_cursor of the previous page unchanged.")


# ----------------------------------------------------------------------------------------------------
# HTTP backend


class HttpAuditSink:
    """An external audit backend: ``POST`` the batch, idempotent on ``event_id`` on the backend's side."""

    def __init__(self, url: str, *, timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._http = httpx.Client(timeout=timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def check(self) -> None:
        """Raise ``AuditSinkUnavailable`` unless the backend answers (any answer but 5xx or a refusal of us)."""
        try:
            reply = self._http.get(self._url, params={"limit": 1})
        except httpx.HTTPError as exc:
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason=type(exc).__name__) from None
        if reply.status_code >= 500 or reply.status_code in (401, 403, 407, 408, 429):
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason=f"HTTP {reply.status_code}")

    def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]:
        unique = list({event.event_id: event for event in events}.values())
        return self.deliver_json_lines([e.to_json_line().encode("utf-8") for e in unique], [e.event_id for e in unique])

    def deliver_json_lines(self, lines: Sequence[bytes], event_ids: Sequence[str]) -> dict[str, str]:
        if not lines:
            return {}
        body = b"".join((b'{"events":[', b",".join(lines), b"]}"))
        try:
            reply = self._http.post(self._url, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason=type(exc).__name__) from None
        if reply.status_code >= 500 or reply.status_code in (401, 403, 404, 408, 429):
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason=f"HTTP {reply.status_code}")
        if reply.status_code >= 400:
            if len(lines) == 1:
                return {event_ids[0]: f"HTTP {reply.status_code}: {reply.text[:200]}"}
            half = len(lines) // 2
            return self.deliver_json_lines(lines[:half], event_ids[:half]) | self.deliver_json_lines(
                lines[half:], event_ids[half:]
            )
        try:
            rejected = (reply.json() or {}).get("rejected") or {}
        except ValueError:
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason="reply is not JSON") from None
        known = set(event_ids)
        return {str(k): str(v) for k, v in rejected.items() if k in known}

    def query(
        self,
        *,
        limit: int,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("actor", actor), ("resource_type", resource_type), ("cursor", cursor)):
            if value is not None:
                params[key] = value
        if since is not None:
            params["since"] = format_utc(since)
        try:
            reply = self._http.get(self._url, params=params)
            reply.raise_for_status()
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason=type(exc).__name__) from None
        if not isinstance(body, dict):
            raise AuditSinkUnavailable("the audit backend (AUDIT_BACKEND_URL)", reason="reply is not a JSON object")
        # the filters are the backend's to apply; never hand on more than the page asked for
        events = body.get("events") or []
        return [AuditEvent.model_validate(e) for e in events[:limit]], body.get("next_cursor")


def open_audit_sink(
    sink_settings: AuditSinkSettings | None = None, terminus_settings: TerminusSettings | None = None
) -> AuditSink:
    """The HTTP backend when ``AUDIT_BACKEND_URL`` is set, else the metadata database. The caller closes it."""
    sink_settings = sink_settings or load_settings(AuditSinkSettings)
    if sink_settings.backend_url:
        return HttpAuditSink(sink_settings.backend_url, timeout_seconds=sink_settings.timeout_seconds)
    return MetadataAuditSink(terminus_settings or load_settings(TerminusSettings))
