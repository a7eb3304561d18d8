"""Audit sinks for the asyncio service: the stores of :mod:`core.audit`, without the jobs' client.

The service's emitter delivers a batch every few milliseconds. Through :class:`~core.audit.MetadataAuditSink`
(the official client behind ``TerminusGateway``, one thread per call) each batch cost about 2 ms of CPU,
as much as the write it audits (bench/RESULTS.md). :class:`AsyncMetadataAuditSink` stores the same
``AuditEvent`` documents (:func:`~core.audit.event_document`, keyed on ``event_id``, replace-or-create in one
commit) through :class:`~core.terminus_async.AsyncDocumentClient`, and answers the audit-log query with the
filters in TerminusDB's query: ``actor``/``resource_type`` are values of the query by example, so only
matching events are read; ``since`` and the cursor are ranges, which the document API's query cannot say,
so they are applied while keeping the newest ``limit + 1`` events (never the whole result) in memory.

:class:`ThreadedAuditSink` runs a blocking sink (the HTTP backend) on threads under the same interface.
``check()`` raises :class:`~core.errors.AuditSinkUnavailable` unless the sink is there to take events:
what ``/readyz`` asks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from core.audit import (
    AuditEvent,
    AuditSink,
    HttpAuditSink,
    batch_documents,
    batch_message,
    metadata_unavailable,
    page_of_events,
    split_refused_batch,
)
from core.errors import AuditSinkUnavailable, TerminusError
from core.metadata_db import AUDIT_EVENT, METADATA_AUTHOR, METADATA_BRANCH, ensure_metadata_db, metadata_gateway
from core.settings import AuditSinkSettings, TerminusSettings
from core.terminus_async import AsyncDocumentClient

__all__ = ["AsyncAuditSink", "AsyncMetadataAuditSink", "ThreadedAuditSink", "as_async_sink", "open_async_audit_sink"]


@runtime_checkable
class AsyncAuditSink(Protocol):
    """:class:`~core.audit.AuditSink` for asyncio (same contract: idempotent on ``event_id``)."""

    async def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]: ...

    async def query(
        self,
        *,
        limit: int,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]: ...

    async def check(self) -> None: ...

    async def aclose(self) -> None: ...


class AsyncMetadataAuditSink:
    """``AuditEvent`` documents in the metadata database, over ``AsyncDocumentClient``."""

    def __init__(self, settings: TerminusSettings, *, max_connections: int = 8) -> None:
        self._settings = settings
        self._documents = AsyncDocumentClient(
            settings, database=settings.meta_database, branch=METADATA_BRANCH, max_connections=max_connections
        )
        self._ready = False
        self._ready_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"AsyncMetadataAuditSink(database={self._settings.meta_database!r})"

    async def aclose(self) -> None:
        await self._documents.aclose()

    async def check(self) -> None:
        try:
            exists = await self._documents.database_exists()
        except TerminusError as exc:
            raise self._unavailable(exc) from None
        if not exists:
            raise AuditSinkUnavailable(
                f"the metadata database '{self._settings.meta_database}'",
                reason="it does not exist yet; the service creates it at start, or run `oms-audit migrate` once",
            )

    async def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]:
        unique = list({event.event_id: event for event in events}.values())
        if not unique:
            return {}
        await self._ensure_ready()
        return await self._store(unique)

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            if self._ready:
                return
            try:
                await asyncio.to_thread(_ensure_metadata, self._settings)
            except TerminusError as exc:
                raise self._unavailable(exc) from None
            self._ready = True

    async def _store(self, events: list[AuditEvent]) -> dict[str, str]:
        """One commit for the batch; what TerminusDB refuses is split by :func:`~core.audit.split_refused_batch`."""
        try:
            await self._documents.replace(
                batch_documents(events), author=METADATA_AUTHOR, message=batch_message(events), create=True
            )
            return {}
        except TerminusError as exc:
            retry, refused = split_refused_batch(events, exc, database=self._settings.meta_database)
        for part in retry:
            refused |= await self._store(part)
        return refused

    async def query(
        self,
        *,
        limit: int,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first, ``limit`` per page; ``next_cursor`` continues after the page's last event."""
        template: dict[str, Any] = {"@type": AUDIT_EVENT}  # the equality filters go to TerminusDB
        if actor is not None:
            template["actor_id"] = actor
        if resource_type is not None:
            template["resource_type"] = resource_type
        await self._ensure_ready()
        try:
            documents = await self._documents.query(template)
        except TerminusError as exc:
            raise self._unavailable(exc) from None
        return page_of_events(documents, limit=limit, since=since, cursor=cursor)

    def _unavailable(self, exc: TerminusError) -> AuditSinkUnavailable:
        return metadata_unavailable(self._settings.meta_database, exc)


def _ensure_metadata(settings: TerminusSettings) -> None:
    with metadata_gateway(settings) as gateway:
        ensure_metadata_db(gateway, settings)


class ThreadedAuditSink:
    """A blocking :class:`~core.audit.AuditSink`, each call on a thread."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink

    def __repr__(self) -> str:
        return f"ThreadedAuditSink({self.sink!r})"

    async def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]:
        return await asyncio.to_thread(self.sink.deliver, events)

    async def query(
        self,
        *,
        limit: int,
        actor: str | None = None,
        resource_type: str | None = None,
        since: datetime | None = None,
        cursor: str | None = None,
    ) -> tuple[list[AuditEvent], str | None]:
        return await asyncio.to_thread(
            self.sink.query, limit=limit, actor=actor, resource_type=resource_type, since=since, cursor=cursor
        )

    async def check(self) -> None:
        check = getattr(self.sink, "check", None)
        if check is not None:
            await asyncio.to_thread(check)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sink.close)


def as_async_sink(sink: AuditSink | AsyncAuditSink) -> AsyncAuditSink:
    """``sink`` itself when it is already asynchronous, else wrapped in :class:`ThreadedAuditSink`."""
    if asyncio.iscoroutinefunction(getattr(sink, "deliver", None)):
        return sink  # type: ignore[return-value]
    return ThreadedAuditSink(sink)  # type: ignore[arg-type]


def open_async_audit_sink(sink_settings: AuditSinkSettings, terminus_settings: TerminusSettings) -> AsyncAuditSink:
    """The HTTP backend when ``AUDIT_BACKEND_URL`` is set, else the metadata database (as ``open_audit_sink``)."""
    if sink_settings.backend_url:
        return ThreadedAuditSink(
            HttpAuditSink(str(sink_settings.backend_url), timeout_seconds=sink_settings.timeout_seconds)
        )
    return AsyncMetadataAuditSink(terminus_settings)
