"""Crash safety: a sweep killed with SIGKILL at random points, with writers appending in other processes,
loses nothing and stores nothing twice once a following sweep has run."""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.audit import Actor, AuditEvent, HttpAuditSink
from core.dlq import DeadLetterQueue
from core.dlq_sweep import RetryPolicy, replay_file
from tests.dlq_sweeper_process import main as sweeper_main
from tests.servers import AuditBackend, serving

TRIALS = 24


@pytest.fixture
def backend() -> Iterator[AuditBackend]:
    server = AuditBackend()
    with serving(server):
        yield server


def _write_forever(directory: str, stop: Any, writer: int) -> None:
    dlq = DeadLetterQueue(Path(directory))
    log = Path(directory).parent / f"written-{writer}.txt"
    with log.open("a") as record:
        number = 0
        while not stop.is_set():
            events = [
                AuditEvent.new(action="update", actor=Actor(id=f"w{writer}"), resource_type="T", n=number + i)
                for i in range(10)
            ]
            dlq.append(events)  # recorded after the append returned: what the writer knows is in the DLQ
            record.write("".join(e.event_id + "\n" for e in events))
            record.flush()
            number += 10
            time.sleep(0.03)


def test_sigkill_at_random_points_loses_nothing_and_stores_nothing_twice(tmp_path: Path, backend: AuditBackend) -> None:
    dlq_dir = tmp_path / "dlq"
    dlq_dir.mkdir()
    dlq = DeadLetterQueue(dlq_dir)
    seed = [AuditEvent.new(action="create", actor=Actor(id="seed"), resource_type="T") for _ in range(3000)]
    dlq.append(seed)
    flaky = {e.event_id for e in random.Random(7).sample(seed, 20)}
    backend.reject = dict.fromkeys(flaky, "refused while the trials run")

    context = multiprocessing.get_context("fork")
    stop = context.Event()
    writers = [context.Process(target=_write_forever, args=(str(dlq_dir), stop, w)) for w in range(2)]
    for process in writers:
        process.start()
    # a forkserver with the sweep's modules imported once: each trial is a fresh process that starts at once
    spawner = multiprocessing.get_context("forkserver")
    spawner.set_forkserver_preload(["tests.dlq_sweeper_process"])
    rng = random.Random(2026)
    killed = 0
    left_claimed = 0  # trials after which a killed sweep had left a claimed file for the next one to recover
    try:
        for _ in range(TRIALS):
            ready = spawner.Event()
            sweeper = spawner.Process(target=sweeper_main, args=(str(dlq_dir), backend.url, "37", ready))
            sweeper.start()
            assert ready.wait(60), "the sweep process did not start"
            time.sleep(rng.uniform(0.0, 0.05))
            if sweeper.is_alive():
                sweeper.kill()  # SIGKILL: no cleanup, no finally
                killed += 1
            sweeper.join(30)
            left_claimed += bool(list(dlq_dir.glob("*.claimed-*")))
    finally:
        stop.set()
        for process in writers:
            process.join(30)
    assert killed >= TRIALS // 2, "most trials must kill a sweep in the middle of its work"
    assert left_claimed, "the trials are meant to leave claimed files behind for the next sweep to recover"

    backend.reject = {}
    with dlq.claimer() as claimer:  # the following sweep
        for claimed in claimer.recover() + claimer.claim():
            outcome = replay_file(claimer, claimed, HttpAuditSink(backend.url), retry=RetryPolicy(2, 0.01))
            assert outcome.finished

    written = {e.event_id for e in seed}
    for log in tmp_path.glob("written-*.txt"):
        written |= set(log.read_text().split())
    poisoned = {json.loads(line)["event_id"] for line in _lines(dlq.path("poison"))}
    assert not list(dlq_dir.glob("*.claimed-*")) and not list(dlq_dir.glob("*.offset")), "no claimed file left"
    assert _lines(dlq.path("fallback")) == [], "the following sweep drained the DLQ"
    assert _lines(dlq.path("corrupt")) == [], "a SIGKILLed sweep never leaves a torn line"
    assert set(backend.events) | poisoned == written, "none lost"
    assert not set(backend.events) & poisoned, "a poisoned event was never stored"
    assert set(backend.events) <= written, "nothing stored that was not written"
    # stored once: the backend keeps one record per event_id; re-deliveries after a kill are the
    # at-least-once delivery that idempotency on event_id absorbs
    assert len(backend.events) == len(set(backend.events))


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []
