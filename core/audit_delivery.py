"""Getting every audit event somewhere durable: the sink, else the DLQ, else the write is refused.

The delivery policy (DESIGN §7): an event goes to the audit sink with a short timeout; what the sink could
not take (it was unreachable, too slow, or rejected single events) is appended to the DLQ as ``fallback``
with the error; if the DLQ cannot be written either, :class:`~core.errors.AuditUndeliverable` is raised and
the caller must not report the write as done.

:class:`AuditEmitter` adds group commit for a concurrent service: events emitted within ``window`` of the
first one, or while every delivery slot is busy, go to the sink in one call (a few calls may be in flight),
and each ``emit`` returns only once *its* event is stored (sink or DLQ). One sink insert per batch instead
of per request is what keeps auditing from halving write throughput. :func:`deliver_events` is the same
policy for one synchronous batch.

Counters (``core.monitoring.audit_metrics``) are incremented once per event, when it is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from core.audit import AuditEvent, AuditSink, LastError
from core.audit_async import AsyncAuditSink, as_async_sink
from core.dlq import DeadLetterQueue
from core.errors import AuditUndeliverable, OmsAuditError
from core.identity import service_name_of
from core.monitoring.audit_metrics import AUDIT_EVENTS_TOTAL, SERVICE_ACCOUNT_OPERATIONS_TOTAL

__all__ = ["AuditEmitter", "DeliveryOutcome", "count_event", "deliver_events"]

log = logging.getLogger(__name__)

Where = Literal["sink", "dlq"]


@dataclass
class DeliveryOutcome:
    """Where each event of a batch ended up; ``failed`` maps event ids to why nothing could store them."""

    stored: dict[str, Where] = field(default_factory=dict)
    failed: dict[str, AuditUndeliverable] = field(default_factory=dict)


def count_event(event: AuditEvent) -> None:
    """The two write-path counters, for one event that is now durable."""
    AUDIT_EVENTS_TOTAL.labels(
        action=event.action, resource_type=event.resource_type or "", success=str(event.success).lower()
    ).inc()
    if event.actor.kind == "service":
        SERVICE_ACCOUNT_OPERATIONS_TOTAL.labels(
            service_name=service_name_of(event.actor.id), operation=event.action
        ).inc()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _for_dlq(event: AuditEvent, error_type: str, message: str, at: datetime) -> AuditEvent:
    return event.model_copy(
        update={
            "dlq_type": "fallback",
            "enqueued_at": at,
            "attempts": event.attempts + 1,
            "last_error": LastError(type=error_type, message=message, at=at),
        }
    )


def _fallback(
    dlq: DeadLetterQueue,
    events: Sequence[AuditEvent],
    errors: dict[str, tuple[str, str]],
    outcome: DeliveryOutcome,
) -> None:
    """Append the events the sink did not store to the DLQ; record who could be stored nowhere."""
    if not events:
        return
    now = datetime.now(UTC)
    records = [_for_dlq(e, *errors[e.event_id], now) for e in events]
    try:
        dlq.append(records, dlq_type="fallback")
    except (OmsAuditError, OSError) as exc:
        log.error("Audit events lost to both sink and DLQ: %d events (%s)", len(events), _describe(exc))
        for event in events:
            outcome.failed[event.event_id] = AuditUndeliverable(
                sink_error=errors[event.event_id][1], dlq_error=_describe(exc)
            )
        return
    log.warning("%d audit events went to the DLQ (%s)", len(events), next(iter(errors.values()))[1])
    for event in events:
        outcome.stored[event.event_id] = "dlq"


def _after_sink(
    events: Sequence[AuditEvent],
    rejected: dict[str, str] | None,
    sink_failure: BaseException | None,
) -> tuple[list[AuditEvent], dict[str, tuple[str, str]], DeliveryOutcome]:
    outcome = DeliveryOutcome()
    errors: dict[str, tuple[str, str]] = {}
    leftover: list[AuditEvent] = []
    for event in events:
        if sink_failure is not None:
            errors[event.event_id] = (type(sink_failure).__name__, _describe(sink_failure))
        elif rejected and event.event_id in rejected:
            errors[event.event_id] = ("Rejected", rejected[event.event_id])
        else:
            outcome.stored[event.event_id] = "sink"
            continue
        leftover.append(event)
    return leftover, errors, outcome


def deliver_events(sink: AuditSink, dlq: DeadLetterQueue, events: Sequence[AuditEvent]) -> DeliveryOutcome:
    """The delivery policy for one batch, in the calling thread (the sink's own timeout applies)."""
    rejected: dict[str, str] | None = None
    failure: BaseException | None = None
    try:
        rejected = sink.deliver(events)
    except Exception as exc:  # any failure of the sink means: keep the events in the DLQ
        failure = exc
    leftover, errors, outcome = _after_sink(events, rejected, failure)
    _fallback(dlq, leftover, errors, outcome)
    _count(events, outcome)
    return outcome


def _count(events: Sequence[AuditEvent], outcome: DeliveryOutcome) -> None:
    for event in events:
        if event.event_id in outcome.stored:
            count_event(event)


@dataclass
class _Pending:
    event: AuditEvent
    done: asyncio.Future[Where]


class AuditEmitter:
    """Group-committing, timeout-bounded delivery for an asyncio service. ``start()`` before, ``stop()`` after."""

    def __init__(
        self,
        sink: AuditSink | AsyncAuditSink,
        dlq: DeadLetterQueue,
        *,
        timeout_seconds: float = 2.0,
        window_seconds: float = 0.003,
        max_batch: int = 500,
        max_in_flight: int = 4,
    ) -> None:
        self.sink = as_async_sink(sink)  # a blocking sink runs on threads
        self.dlq = dlq
        self.timeout_seconds = timeout_seconds
        self.window_seconds = window_seconds
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.batches = 0  # sink calls made (for tests and benchmarks: proof of grouping)
        self.sink_healthy: bool | None = None  # None until the first delivery
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._worker = asyncio.create_task(self._run(), name="audit-emitter")

    async def stop(self) -> None:
        """Deliver what is queued, then stop."""
        if self._queue is not None and self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._worker = None

    async def emit(self, event: AuditEvent) -> Where:
        """Return once the event is stored ('sink' or 'dlq'); raise AuditUndeliverable when it is nowhere."""
        if self._queue is None or self._worker is None or self._worker.done():
            raise RuntimeError("AuditEmitter.start() was not called (or the emitter has stopped)")
        done: asyncio.Future[Where] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(event, done))
        return await done

    async def _run(self) -> None:
        """Collect a batch, hand it to a delivery task, repeat; at most ``max_in_flight`` deliveries at once.

        A batch is what arrived within ``window`` of its first event, plus whatever queued while every
        delivery slot was busy: the slower the sink, the bigger the batches.
        """
        assert self._queue is not None and self._slots is not None
        queue, slots = self._queue, self._slots
        while True:
            batch = [await queue.get()]
            if self.window_seconds > 0:
                await asyncio.sleep(self.window_seconds)
            await slots.acquire()
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            task = asyncio.create_task(self._deliver_and_release(batch))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver_and_release(self, batch: list[_Pending]) -> None:
        assert self._queue is not None and self._slots is not None
        try:
            await self._deliver(batch)
        except Exception as exc:  # never leave a request waiting forever
            log.exception("Audit delivery failed unexpectedly")
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(AuditUndeliverable(sink_error=_describe(exc), dlq_error="not attempted"))
        finally:
            self._slots.release()
            for _ in batch:
                self._queue.task_done()

    async def _deliver(self, batch: list[_Pending]) -> None:
        events = [pending.event for pending in batch]
        self.batches += 1
        rejected: dict[str, str] | None = None
        failure: BaseException | None = None
        try:
            rejected = await asyncio.wait_for(self.sink.deliver(events), self.timeout_seconds)
        except TimeoutError:
            # The sink call may still finish (in its thread): the DLQ copy is then a duplicate, which the
            # sweep's replay absorbs (idempotent on event_id). Losing the event would not be.
            failure = TimeoutError(f"the audit sink did not answer within {self.timeout_seconds:g}s")
        except Exception as exc:
            failure = exc
        self.sink_healthy = failure is None
        leftover, errors, outcome = _after_sink(events, rejected, failure)
        if leftover:
            await asyncio.to_thread(_fallback, self.dlq, leftover, errors, outcome)
        _count(events, outcome)
        for pending in batch:
            if pending.done.done():
                continue
            where = outcome.stored.get(pending.event.event_id)
            if where is not None:
                pending.done.set_result(where)
            else:
                pending.done.set_exception(
                    outcome.failed.get(pending.event.event_id)
                    or AuditUndeliverable(sink_error="unknown", dlq_error="unknown")
                )
