"""One migration per target database at a time: a lease kept in the metadata database.

The lease is a ``MigrationLease`` document keyed on the target database's name. It is taken and changed
with TerminusDB's optimistic concurrency: read the document together with the branch's data version, then
write passing that version; if anybody committed in between, the write is refused
(:class:`~core.errors.DataVersionConflict`) and we read again and decide again, a few times, with a short
random pause. The data version is the whole branch's, so leases live on the metadata database's
``migrations`` branch, where only runs and leases are written (audit events go to ``main``).

A lease belongs to a *run* (``run_id``): a retried task of the same run takes it back, a different run is
told who holds it (:class:`~core.errors.LeaseHeld`) until it expires, after which it may be taken over.
The lease also names its process (host, pid, start time): a holder on this host whose process is gone is
dead for certain and is taken over at once; on another host the TTL decides. Expiry is judged by each
process's clock, so the TTL must be much longer than the clock skew between hosts.

Every function takes a gateway opened on the metadata database (:func:`core.metadata_db.metadata_gateway`);
they name the branch themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.errors import (
    AlreadyExists,
    DataVersionConflict,
    DocumentNotFound,
    LeaseHeld,
    LeaseLost,
    is_transient,
)
from core.metadata_db import METADATA_AUTHOR, MIGRATION_LEASE, MIGRATIONS_BRANCH, lexical_id
from core.optimistic import retry_on_conflict
from core.processes import ProcessId, this_process
from core.terminus import TerminusGateway
from core.timestamps import format_utc, parse_utc, utc_now

logger = logging.getLogger(__name__)

GatewayFactory = Callable[[], TerminusGateway]


class Lease(BaseModel):
    """A held lease, as this process last wrote it."""

    model_config = ConfigDict(frozen=True)

    database: str
    owner: str
    run_id: str
    acquired_at: datetime
    expires_at: datetime
    #: the process holding it (None for leases written before processes were recorded)
    process: ProcessId | None = None
    #: who held the lease we replaced, when acquiring was a takeover
    took_over_from: str | None = None
    #: the run id of that holder
    took_over_run: str | None = None

    @property
    def holder(self) -> str:
        where = f", {self.process}" if self.process else ""
        return f"{self.owner} (run {self.run_id}{where})"

    def process_gone(self) -> bool:
        """True only when the holding process is known to have ended (it ran on this host)."""
        return self.process is not None and self.process.is_gone() is True

    @property
    def document_id(self) -> str:
        return lease_document_id(self.database)

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or utc_now()) >= self.expires_at

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@id": self.document_id,
            "@type": MIGRATION_LEASE,
            "database": self.database,
            "owner": self.owner,
            "run_id": self.run_id,
            "acquired_at": format_utc(self.acquired_at),
            "expires_at": format_utc(self.expires_at),
        }
        if self.process is not None:
            doc |= {"host": self.process.host, "pid": self.process.pid, "process_started": self.process.started}
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Lease:
        process = None
        if doc.get("host") and doc.get("pid") is not None:
            process = ProcessId(host=doc["host"], pid=int(doc["pid"]), started=doc.get("process_started") or "")
        return cls(
            database=doc["database"],
            owner=doc["owner"],
            run_id=doc["run_id"],
            acquired_at=parse_utc(doc["acquired_at"]),
            expires_at=parse_utc(doc["expires_at"]),
            process=process,
        )


def lease_document_id(database: str) -> str:
    return lexical_id(MIGRATION_LEASE, database)


def read_lease(gateway: TerminusGateway, database: str) -> Lease | None:
    """The lease currently recorded for ``database`` (possibly expired), or None."""
    return _read(gateway, database)[0]


def acquire_lease(
    gateway: TerminusGateway,
    *,
    database: str,
    owner: str,
    run_id: str,
    ttl_seconds: float,
    now: datetime | None = None,
    abandoned: Callable[[Lease], bool] | None = None,
    process: ProcessId | None = None,
) -> Lease:
    """Take the lease on ``database`` for ``run_id``, or raise :class:`LeaseHeld` naming who has it.

    A lease of the same run is renewed (a retried task gets it back); an expired lease of another run is
    taken over, which the returned lease records in ``took_over_from``. So is a live lease whose process is
    gone (same host), or that ``abandoned(lease)`` declares dead (its run is known to have ended, e.g.
    crashed or cancelled), so a re-run after a crash need not wait for the expiry. ``process`` is the
    holder to record (default: this process).
    """
    ttl = _check_ttl(ttl_seconds)
    _check_name("database", database)
    _check_name("owner", owner)
    _check_name("run_id", run_id)
    holder = process or this_process()

    def attempt() -> Lease:
        current, version = _read(gateway, database)
        at = now or utc_now()
        lease = Lease(
            database=database, owner=owner, run_id=run_id, acquired_at=at, expires_at=at + ttl, process=holder
        )
        if current is None:
            gateway.insert_documents(
                [lease.to_document()],
                author=METADATA_AUTHOR,
                message=f"Lease {database} for run {run_id}",
                data_version=version,
                branch=MIGRATIONS_BRANCH,
            )
            logger.info("Run %s acquired the migration lease on %r", run_id, database)
            return lease
        if current.run_id == run_id:
            lease = lease.model_copy(update={"acquired_at": current.acquired_at})
            _replace(gateway, lease, version, f"Lease {database} re-acquired by run {run_id}")
            logger.info("Run %s re-acquired its migration lease on %r", run_id, database)
            return lease
        why = _why_dead(current, at, abandoned)
        if why is None:
            raise LeaseHeld(holder=current.holder, expires_at=current.expires_at, database=database)
        lease = lease.model_copy(update={"took_over_from": current.holder, "took_over_run": current.run_id})
        _replace(gateway, lease, version, f"Lease {database} taken over by run {run_id}")
        logger.warning("Run %s took over the migration lease on %r from %s (%s)", run_id, database, current.holder, why)
        return lease

    return retry_on_conflict(
        attempt, what=f"Lease on {database}", conflicts=(DataVersionConflict, AlreadyExists, DocumentNotFound)
    )


def _why_dead(current: Lease, at: datetime, abandoned: Callable[[Lease], bool] | None) -> str | None:
    """Why the holder of ``current`` may be replaced, or None while it lives."""
    if current.is_expired(at):
        return f"it expired at {current.expires_at.isoformat()}"
    if current.process_gone():
        return f"its process ({current.process}) is gone"
    if abandoned is not None and abandoned(current):
        return "its run has ended"
    return None


def renew_lease(gateway: TerminusGateway, lease: Lease, ttl_seconds: float, *, now: datetime | None = None) -> Lease:
    """Push our lease's expiry to ``now + ttl``; :class:`LeaseLost` if it is no longer ours.

    A lease that expired but was not taken over is still ours to renew: nobody else holds it.
    """
    ttl = _check_ttl(ttl_seconds)

    def attempt() -> Lease:
        current, version = _read(gateway, lease.database)
        if current is None:
            raise LeaseLost(lease.database, lease.run_id, reason="the lease was released or removed")
        if current.run_id != lease.run_id:
            raise LeaseLost(lease.database, lease.run_id, reason=f"it is now held by {current.holder}")
        at = now or utc_now()
        renewed = lease.model_copy(update={"acquired_at": current.acquired_at, "expires_at": at + ttl})
        _replace(gateway, renewed, version, f"Lease {lease.database} renewed by run {lease.run_id}")
        return renewed

    return retry_on_conflict(
        attempt, what=f"Lease on {lease.database}", conflicts=(DataVersionConflict, DocumentNotFound)
    )


def release_lease(gateway: TerminusGateway, lease: Lease) -> bool:
    """Remove our lease. False (and nothing changed) when it is gone or belongs to another run now."""

    def attempt() -> bool:
        current, version = _read(gateway, lease.database)
        if current is None or current.run_id != lease.run_id:
            return False
        try:
            gateway.delete_documents(
                [lease.document_id],
                author=METADATA_AUTHOR,
                message=f"Lease {lease.database} released by run {lease.run_id}",
                data_version=version,
                branch=MIGRATIONS_BRANCH,
            )
        except DocumentNotFound:
            return False
        logger.info("Run %s released the migration lease on %r", lease.run_id, lease.database)
        return True

    return retry_on_conflict(attempt, what=f"Lease on {lease.database}")


class LeaseKeeper:
    """Keeps a lease alive while a block of work runs, and releases it afterwards.

    A background thread renews the lease every ``ttl / 3`` through its own gateway (from the factory), so
    a renewal never waits behind a long call of the work itself. If renewing fails for good (the lease was
    taken over, or the server stayed unreachable until the lease expired) the thread stops, ``lost``
    becomes True and ``error`` says why; the work should check :meth:`raise_if_lost` between steps::

        with LeaseKeeper(lambda: metadata_gateway(settings), lease, ttl_seconds=300) as keeper:
            for step in steps:
                keeper.raise_if_lost()
                step()
    """

    def __init__(
        self,
        gateway_factory: GatewayFactory,
        lease: Lease,
        ttl_seconds: float,
        *,
        interval_seconds: float | None = None,
    ) -> None:
        self.ttl_seconds = _check_ttl(ttl_seconds).total_seconds()
        self.interval_seconds = interval_seconds if interval_seconds is not None else self.ttl_seconds / 3
        if self.interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be positive, got {self.interval_seconds!r}")
        self._factory = gateway_factory
        self._lease = lease
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.error: BaseException | None = None
        #: the latest transient failure that was tolerated because the lease had not yet expired
        self.last_transient_error: BaseException | None = None
        self.released: bool | None = None

    @classmethod
    def acquire(
        cls,
        gateway_factory: GatewayFactory,
        *,
        database: str,
        owner: str,
        run_id: str,
        ttl_seconds: float,
        interval_seconds: float | None = None,
        abandoned: Callable[[Lease], bool] | None = None,
        attempt: Callable[[Callable[[], Lease]], Lease] = lambda take: take(),
    ) -> LeaseKeeper:
        """Take the lease (or raise :class:`LeaseHeld`) and return a keeper for it, ready for ``with``.

        ``attempt`` runs the taking (e.g. under a retry policy for transient failures)."""

        def take() -> Lease:
            with gateway_factory() as gateway:
                return acquire_lease(
                    gateway, database=database, owner=owner, run_id=run_id, ttl_seconds=ttl_seconds, abandoned=abandoned
                )

        return cls(gateway_factory, attempt(take), ttl_seconds, interval_seconds=interval_seconds)

    @property
    def lease(self) -> Lease:
        with self._lock:
            return self._lease

    @property
    def lost(self) -> bool:
        return self.error is not None

    def raise_if_lost(self) -> None:
        """Raise :class:`LeaseLost` if the lease could not be kept."""
        error = self.error
        if error is None:
            return
        if isinstance(error, LeaseLost):
            raise error
        lease = self.lease
        raise LeaseLost(lease.database, lease.run_id, reason=f"renewing failed: {error}") from error

    def __enter__(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._keep, name=f"lease-keeper-{self._lease.database}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop renewing and release the lease (a no-op if it is no longer ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.released is not None:
            return
        lease = self.lease
        try:
            with self._factory() as gateway:
                self.released = release_lease(gateway, lease)
        except Exception as exc:
            # Not fatal: the lease expires by itself. Do not hide the error of the work itself.
            self.released = False
            logger.warning(
                "Could not release the migration lease on %r (it expires at %s): %s",
                lease.database,
                lease.expires_at.isoformat(),
                exc,
            )

    def _keep(self) -> None:
        try:
            with self._factory() as gateway:
                while not self._stop.wait(self.interval_seconds):
                    if not self._renew_once(gateway):
                        return
        except Exception as exc:  # opening or closing the gateway failed
            self._lose(exc)

    def _renew_once(self, gateway: TerminusGateway) -> bool:
        current = self.lease
        try:
            renewed = renew_lease(gateway, current, self.ttl_seconds)
        except Exception as exc:
            if is_transient(exc) and not current.is_expired():
                self.last_transient_error = exc
                logger.warning(
                    "Renewing the migration lease on %r failed (%s); retrying until it expires at %s",
                    current.database,
                    exc,
                    current.expires_at.isoformat(),
                )
                return True
            self._lose(exc)
            return False
        with self._lock:
            self._lease = renewed
            self.renewals += 1
        return True

    def _lose(self, exc: BaseException) -> None:
        self.error = exc
        logger.error("Stopped renewing the migration lease on %r: %s", self._lease.database, exc)


def _read(gateway: TerminusGateway, database: str) -> tuple[Lease | None, str]:
    """The lease document and the data version it was read at (the branch's version when it is missing)."""
    try:
        doc, version = gateway.get_document(lease_document_id(database), branch=MIGRATIONS_BRANCH)
    except DocumentNotFound:
        return None, gateway.data_version(branch=MIGRATIONS_BRANCH)
    return Lease.from_document(doc), version


def _replace(gateway: TerminusGateway, lease: Lease, version: str, message: str) -> None:
    gateway.replace_documents(
        [lease.to_document()],
        author=METADATA_AUTHOR,
        message=message,
        data_version=version,
        branch=MIGRATIONS_BRANCH,
    )


def _check_ttl(ttl_seconds: float) -> timedelta:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be a positive number of seconds, got {ttl_seconds!r}")
    return timedelta(seconds=ttl_seconds)


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
