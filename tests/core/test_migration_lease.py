"""The migration lease: one run per target database, taken with TerminusDB's optimistic concurrency."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import LeaseHeld
from core.metadata_db import AUDIT_EVENT, METADATA_BRANCH, metadata_gateway
from core.migration_lease import (
    Lease,
    LeaseKeeper,
    LeaseLost,
    acquire_lease,
    read_lease,
    release_lease,
    renew_lease,
)
from core.settings import TerminusSettings
from core.terminus import TerminusGateway

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _wait_for(condition: Any, what: str, timeout: float = 15.0) -> None:
    """Poll until ``condition()`` holds; the timeout only guards against hanging, it asserts no speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_acquire_stores_the_lease(meta: TerminusGateway) -> None:
    lease = acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)

    assert lease.expires_at == T0 + timedelta(seconds=60)
    assert lease.took_over_from is None
    stored = read_lease(meta, "oms")
    assert stored is not None
    assert (stored.owner, stored.run_id, stored.acquired_at, stored.expires_at) == (
        "worker-a",
        "run-1",
        T0,
        T0 + timedelta(seconds=60),
    )


def test_second_run_fails_fast_naming_the_holder(meta: TerminusGateway) -> None:
    acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)

    with pytest.raises(LeaseHeld) as caught:
        acquire_lease(
            meta,
            database="oms",
            owner="worker-b",
            run_id="run-2",
            ttl_seconds=60,
            now=T0 + timedelta(seconds=30),
        )

    assert caught.value.database == "oms"
    assert "worker-a" in caught.value.holder and "run-1" in caught.value.holder
    assert caught.value.expires_at == T0 + timedelta(seconds=60)
    assert "worker-a" in str(caught.value)
    stored = read_lease(meta, "oms")
    assert stored is not None and stored.run_id == "run-1"


def test_leases_on_different_databases_are_independent(meta: TerminusGateway) -> None:
    acquire_lease(meta, database="oms", owner="a", run_id="run-1", ttl_seconds=60, now=T0)
    other = acquire_lease(meta, database="oms_staging", owner="b", run_id="run-2", ttl_seconds=60, now=T0)
    assert other.database == "oms_staging"


def test_database_names_that_need_escaping_are_found_again(meta: TerminusGateway) -> None:
    """The lease's id is computed the way TerminusDB builds Lexical ids (percent-encoded segment)."""
    name = "team db/x+y"
    acquire_lease(meta, database=name, owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)
    stored = read_lease(meta, name)
    assert stored is not None and stored.database == name
    with pytest.raises(LeaseHeld):
        acquire_lease(meta, database=name, owner="worker-b", run_id="run-2", ttl_seconds=60, now=T0)


def test_the_same_run_gets_its_lease_back(meta: TerminusGateway) -> None:
    first = acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)
    again = acquire_lease(
        meta,
        database="oms",
        owner="worker-a2",
        run_id="run-1",
        ttl_seconds=60,
        now=T0 + timedelta(seconds=10),
    )
    assert again.acquired_at == first.acquired_at
    assert again.expires_at == T0 + timedelta(seconds=70)
    assert again.took_over_from is None


def test_an_expired_lease_is_taken_over(meta: TerminusGateway) -> None:
    acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)
    later = T0 + timedelta(seconds=61)

    lease = acquire_lease(meta, database="oms", owner="worker-b", run_id="run-2", ttl_seconds=60, now=later)

    assert lease.took_over_from is not None and "run-1" in lease.took_over_from
    stored = read_lease(meta, "oms")
    assert stored is not None
    assert (stored.run_id, stored.acquired_at) == ("run-2", later)


def test_a_live_lease_of_an_ended_run_is_taken_over_only_when_declared_abandoned(meta: TerminusGateway) -> None:
    acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=600, now=T0)
    soon = T0 + timedelta(seconds=5)
    with pytest.raises(LeaseHeld):
        acquire_lease(
            meta, database="oms", owner="b", run_id="run-2", ttl_seconds=60, now=soon, abandoned=lambda _: False
        )
    seen: list[str] = []

    def ended(lease: Any) -> bool:
        seen.append(lease.run_id)
        return True

    lease = acquire_lease(meta, database="oms", owner="b", run_id="run-2", ttl_seconds=60, now=soon, abandoned=ended)
    assert seen == ["run-1"] and lease.took_over_from is not None and "run-1" in lease.took_over_from


def test_renew_pushes_the_expiry(meta: TerminusGateway) -> None:
    lease = acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)

    renewed = renew_lease(meta, lease, 120, now=T0 + timedelta(seconds=50))

    assert renewed.expires_at == T0 + timedelta(seconds=170)
    stored = read_lease(meta, "oms")
    assert stored is not None and stored.expires_at == renewed.expires_at
    assert stored.acquired_at == T0


def test_renewing_a_lease_taken_over_says_it_is_lost(meta: TerminusGateway) -> None:
    lease = acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)
    acquire_lease(
        meta, database="oms", owner="worker-b", run_id="run-2", ttl_seconds=60, now=T0 + timedelta(seconds=61)
    )

    with pytest.raises(LeaseLost, match="run-2"):
        renew_lease(meta, lease, 60)


def test_release_removes_only_our_own_lease(meta: TerminusGateway) -> None:
    ours = acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0)
    theirs = Lease(database="oms", owner="worker-b", run_id="run-2", acquired_at=T0, expires_at=T0)

    assert release_lease(meta, theirs) is False
    assert read_lease(meta, "oms") is not None

    assert release_lease(meta, ours) is True
    assert read_lease(meta, "oms") is None
    assert release_lease(meta, ours) is False

    # once released, another run can take it at once
    acquire_lease(meta, database="oms", owner="worker-b", run_id="run-2", ttl_seconds=60, now=T0)


@pytest.mark.parametrize("ttl", [0, -5])
def test_a_ttl_that_is_not_positive_is_refused(meta: TerminusGateway, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        acquire_lease(meta, database="oms", owner="a", run_id="run-1", ttl_seconds=ttl)


def _race_for_the_lease(settings: TerminusSettings, database: str) -> tuple[list[Lease], list[LeaseHeld]]:
    """Two runs, each with its own connection, ask for the same lease at the same moment."""
    barrier = threading.Barrier(2)
    winners: list[Lease] = []
    refused: list[LeaseHeld] = []
    other: list[BaseException] = []

    def race(run_id: str) -> None:
        try:
            with metadata_gateway(settings) as gateway:
                read_lease(gateway, database)  # connect first, so that both really ask at the same moment
                barrier.wait()
                winners.append(acquire_lease(gateway, database=database, owner=run_id, run_id=run_id, ttl_seconds=60))
        except LeaseHeld as exc:
            refused.append(exc)
        except BaseException as exc:  # reported below
            other.append(exc)

    threads = [threading.Thread(target=race, args=(f"run-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other == []
    return winners, refused


def test_two_runs_racing_for_the_lease_exactly_one_wins(settings: TerminusSettings) -> None:
    for round_ in range(5):
        database = f"target_{round_}"
        winners, refused = _race_for_the_lease(settings, database)

        assert len(winners) == 1 and len(refused) == 1
        assert refused[0].holder == winners[0].holder
        with metadata_gateway(settings) as gateway:
            stored = read_lease(gateway, database)
        assert stored is not None and stored.run_id == winners[0].run_id


def test_two_runs_racing_to_take_over_an_expired_lease_exactly_one_wins(settings: TerminusSettings) -> None:
    for round_ in range(5):
        database = f"target_{round_}"
        with metadata_gateway(settings) as gateway:
            acquire_lease(gateway, database=database, owner="crashed", run_id="run-old", ttl_seconds=60, now=T0)

        winners, refused = _race_for_the_lease(settings, database)

        assert len(winners) == 1 and len(refused) == 1
        assert winners[0].took_over_from is not None and "run-old" in winners[0].took_over_from
        assert refused[0].holder == winners[0].holder


def test_lease_survives_concurrent_writes_to_the_metadata_branch(settings: TerminusSettings) -> None:
    """A stream of audit events (a commit each) must not starve lease writes: they are on another branch."""
    stop = threading.Event()
    written: list[int] = []

    def write_events() -> None:
        with metadata_gateway(settings) as gateway:
            while not stop.is_set():
                event_id = str(uuid.uuid4())
                gateway.insert_documents(
                    [
                        {
                            "@type": AUDIT_EVENT,
                            "event_id": event_id,
                            "occurred_at": "2024-05-01T10:00:00Z",
                            "action": "create",
                            "resource_type": "ObjectType",
                            "resource_id": "ObjectType/x",
                            "actor_id": "u-1",
                            "actor_kind": "user",
                            "success": True,
                            "recorded_at": "2024-05-01T10:00:00Z",
                        }
                    ],
                    author="test",
                    message="event",
                    branch=METADATA_BRANCH,
                )
                written.append(1)

    writer = threading.Thread(target=write_events)
    writer.start()
    try:
        _wait_for(lambda: len(written) > 0, "the first audit event")
        with metadata_gateway(settings) as meta:
            for n in range(10):
                lease = acquire_lease(meta, database="oms", owner="a", run_id=f"run-{n}", ttl_seconds=60)
                lease = renew_lease(meta, lease, 60)
                assert release_lease(meta, lease) is True
    finally:
        stop.set()
        writer.join()
    assert len(written) > 1


def test_keeper_renews_while_working_and_releases_on_exit(settings: TerminusSettings, meta: TerminusGateway) -> None:
    lease = acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=0.6)

    with LeaseKeeper(lambda: metadata_gateway(settings), lease, ttl_seconds=0.6) as keeper:
        _wait_for(lambda: keeper.renewals >= 2, "two renewals")
        stored = read_lease(meta, "oms")
        assert stored is not None and stored.expires_at > lease.expires_at
        assert not keeper.lost
        keeper.raise_if_lost()

    assert keeper.released is True
    assert read_lease(meta, "oms") is None


def test_keeper_notices_a_takeover_and_leaves_the_new_holder_alone(
    settings: TerminusSettings, meta: TerminusGateway
) -> None:
    keeper = LeaseKeeper.acquire(
        lambda: metadata_gateway(settings), database="oms", owner="worker-a", run_id="run-1", ttl_seconds=0.6
    )
    with keeper:
        far_future = datetime.now(UTC) + timedelta(hours=1)
        acquire_lease(meta, database="oms", owner="worker-b", run_id="run-2", ttl_seconds=60, now=far_future)
        _wait_for(lambda: keeper.lost, "the keeper to notice")
        with pytest.raises(LeaseLost, match="run-2"):
            keeper.raise_if_lost()

    assert keeper.released is False
    stored = read_lease(meta, "oms")
    assert stored is not None and stored.run_id == "run-2"


def test_keeper_acquire_refuses_when_the_lease_is_held(settings: TerminusSettings, meta: TerminusGateway) -> None:
    acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60)
    with pytest.raises(LeaseHeld):
        LeaseKeeper.acquire(
            lambda: metadata_gateway(settings),
            database="oms",
            owner="worker-b",
            run_id="run-2",
            ttl_seconds=60,
        )


def test_a_lease_whose_process_is_gone_on_this_host_is_taken_over_at_once(meta: TerminusGateway) -> None:
    import subprocess
    import sys

    from core.processes import ProcessId, this_host

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # reaped: its pid names no process any more
    gone = ProcessId(host=this_host(), pid=ended.pid, started="1")
    acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=600, process=gone)
    stored = read_lease(meta, "oms")
    assert stored is not None and stored.process == gone and f"pid {ended.pid}" in stored.holder

    lease = acquire_lease(meta, database="oms", owner="worker-b", run_id="run-2", ttl_seconds=600)
    assert lease.took_over_run == "run-1"


def test_a_holder_on_another_host_keeps_the_lease_until_it_expires(meta: TerminusGateway) -> None:
    from core.processes import ProcessId

    elsewhere = ProcessId(host="another-host.example", pid=1, started="1")
    acquire_lease(meta, database="oms", owner="worker-a", run_id="run-1", ttl_seconds=60, now=T0, process=elsewhere)
    with pytest.raises(LeaseHeld, match=r"another-host\.example"):
        acquire_lease(meta, database="oms", owner="b", run_id="run-2", ttl_seconds=60, now=T0 + timedelta(seconds=30))
    lease = acquire_lease(
        meta, database="oms", owner="b", run_id="run-2", ttl_seconds=60, now=T0 + timedelta(seconds=61)
    )
    assert lease.took_over_run == "run-1"


def test_a_reused_pid_does_not_pass_for_the_holder() -> None:
    import os

    from core.processes import ProcessId, this_host, this_process

    assert this_process().is_gone() is False
    parent = ProcessId(host=this_host(), pid=os.getppid(), started="not-its-start-time")
    assert parent.is_gone() is True, "same pid, another start time: the original process is gone"
