"""The nightly DLQ sweep against real peers: Pushgateway binary, webhook receiver, audit backend, sandbox."""

from __future__ import annotations

import base64
import json
import logging
import multiprocessing
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.artifacts import Artifact
from prefect.states import State

from core.audit import AuditEvent
from core.dlq import DeadLetterQueue
from core.monitoring import audit_metrics
from core.settings import TerminusSettings
from core.terminus import TerminusGateway
from flows.dlq_sweep import dlq_sweep
from tests.conftest import ADMIN_TOKEN
from tests.servers import free_port

from .dlq_fixtures import SweepEnv, backend, dlq_lines, make_events, pushgateway, sweep_env, webhook

__all__ = ["backend", "pushgateway", "sweep_env", "webhook"]  # fixtures


def sweep(**params: Any) -> State[Any]:
    return dlq_sweep(env="test", return_state=True, **params)


def report_of(state: State[Any]) -> dict[str, Any]:
    artifact = Artifact.get("dlq-sweep-summary")
    assert artifact is not None
    return {"markdown": str(artifact.data), "state": state}


def test_sweep_replays_and_the_pushgateway_shows_the_guides_metrics(sweep_env: SweepEnv) -> None:
    events = make_events(5)
    sweep_env.dlq.append(events)
    sweep_env.dlq.append_raw([b"not json at all", b""], "fallback")
    sweep_env.backend.reject = {events[0].event_id: "resource_id refused by policy"}

    state = sweep()

    assert state.is_completed(), state.message
    assert set(sweep_env.backend.events) == {e.event_id for e in events[1:]}
    size = sweep_env.pushgateway.samples("oms_audit_dlq_size")
    common = 'env="test",instance="test-host",job="oms_audit_dlq_sweep"'
    assert size[f'{{dlq_type="fallback",{common}}}'] == 1  # the rejected one, re-queued
    assert size[f'{{dlq_type="corrupt",{common}}}'] == 1
    assert size[f'{{dlq_type="poison",{common}}}'] == 0
    ages = sweep_env.pushgateway.samples("oms_audit_dlq_oldest_event_age_seconds")
    assert 0 <= ages[f'{{dlq_type="fallback",{common}}}'] < 600
    assert sweep_env.pushgateway.samples("oms_audit_dlq_oldest_event_timestamp_seconds")
    outcomes = sweep_env.pushgateway.samples("oms_audit_dlq_sweep_events")
    assert outcomes[f'{{{common},outcome="replayed"}}'] == 4
    assert outcomes[f'{{{common},outcome="requeued"}}'] == 1
    assert outcomes[f'{{{common},outcome="corrupt"}}'] == 1
    assert sweep_env.pushgateway.samples("oms_audit_dlq_sweep_last_success_timestamp_seconds")
    assert sweep_env.pushgateway.samples("oms_audit_dlq_sweep_duration_seconds")
    (requeued,) = dlq_lines(sweep_env.dlq, "fallback")
    assert requeued["event_id"] == events[0].event_id and requeued["attempts"] == 2
    assert requeued["last_error"]["type"] == "SinkRejected"
    assert "resource_id refused by policy" in requeued["last_error"]["message"]
    assert not list(sweep_env.dir.glob("*.claimed-*"))
    progress = Artifact.get("dlq-sweep-progress")
    assert progress is not None and float(progress.data) == 100.0  # type: ignore[arg-type]
    markdown = report_of(state)["markdown"]
    assert "replayed: **4**" in markdown and "Error patterns" in markdown and "ConnectTimeout" in markdown


def test_sink_down_the_whole_run_keeps_everything_and_the_last_success_stays(sweep_env: SweepEnv) -> None:
    sweep_env.dlq.append(make_events(2))
    assert sweep().is_completed()
    key = '{env="test",instance="test-host",job="oms_audit_dlq_sweep"}'
    (before,) = sweep_env.pushgateway.samples("oms_audit_dlq_sweep_last_success_timestamp_seconds").values()

    waiting = make_events(7)
    sweep_env.dlq.append(waiting)
    sweep_env.backend.fail_with = 503
    time.sleep(0.01)
    state = sweep()

    assert state.is_failed() and state.name == "AuditSinkUnavailable"
    assert "stay in the dead-letter queue" in (state.message or "")
    assert sweep_env.pushgateway.samples("oms_audit_dlq_sweep_last_success_timestamp_seconds")[key] == before
    assert sweep_env.pushgateway.samples("oms_audit_dlq_size")[key.replace("{", '{dlq_type="fallback",')] == 7
    assert len(list(sweep_env.dir.glob("*.claimed-*"))) == 1, "left claimed at its checkpoint"
    assert {line["attempts"] for line in dlq_lines(sweep_env.dlq, "fallback")} == {1}, "no attempt charged"

    sweep_env.backend.fail_with = None
    assert sweep().is_completed()
    assert {e.event_id for e in waiting} <= set(sweep_env.backend.events)
    assert max(sweep_env.backend.deliveries.values()) == 1
    assert not list(sweep_env.dir.glob("*.claimed-*")) and dlq_lines(sweep_env.dlq, "fallback") == []
    after = sweep_env.pushgateway.samples("oms_audit_dlq_sweep_last_success_timestamp_seconds")[key]
    assert after > before


def test_poison_after_max_attempts_then_redrive_replays_it(sweep_env: SweepEnv) -> None:
    from core.dlq_sweep import redrive

    (bad, good) = make_events(2)  # attempts=1 already (the emitter's failed delivery)
    sweep_env.dlq.append([bad, good])
    sweep_env.backend.reject = {bad.event_id: "schema check failed"}

    assert sweep(max_attempts=3).is_completed()
    assert [line["attempts"] for line in dlq_lines(sweep_env.dlq, "fallback")] == [2]
    assert sweep(max_attempts=3).is_completed()
    assert dlq_lines(sweep_env.dlq, "fallback") == []
    (poisoned,) = dlq_lines(sweep_env.dlq, "poison")
    assert poisoned["event_id"] == bad.event_id and poisoned["attempts"] == 3 and poisoned["dlq_type"] == "poison"

    sweep_env.backend.reject = {}
    with sweep_env.dlq.claimer() as claimer:
        moved = redrive(claimer, "poison")
    assert moved.requeued == 1 and dlq_lines(sweep_env.dlq, "poison") == []
    assert dlq_lines(sweep_env.dlq, "fallback")[0]["attempts"] == 0
    assert sweep().is_completed()
    assert bad.event_id in sweep_env.backend.events


def test_bad_lines_are_kept_raw_with_reason_and_origin(sweep_env: SweepEnv) -> None:
    good = make_events(3)
    duplicate = good[0].model_copy()
    big = make_events(1, blob="x" * 10_000_000)[0]  # a 10 MB line that is a real event
    dlq = sweep_env.dlq
    dlq.append([good[0], duplicate, good[1], big])
    bad_lines = [
        b"this is not json",
        b"[1, 2, 3]",
        b'{"action": "create", "actor": {"id": "u"}}',
        b'{"event_id": "\xff\xfe", "action": "create"}',
    ]
    dlq.append_raw(bad_lines, "fallback")
    dlq.append([good[2]])
    with dlq.path().open("ab") as handle:  # a writer that died mid-line, inside a multi-byte character
        handle.write('{"event_id": "torn", "actor": {"username": "J\u00fc'.encode()[:-1])
    (sweep_env.dir / "audit_dlq_fallback-empty.jsonl").write_bytes(b"")

    state = sweep()

    assert state.is_completed(), state.message
    assert set(sweep_env.backend.events) == {e.event_id for e in good} | {big.event_id}
    assert len(sweep_env.backend.events[big.event_id]["blob"]) == 10_000_000
    assert sweep_env.backend.deliveries[good[0].event_id] == 1, "a duplicate event_id is delivered once"
    corrupt = dlq_lines(dlq, "corrupt")
    assert len(corrupt) == 5
    by_reason = {c["reason"].split(":")[0].split(" (")[0]: c for c in corrupt}
    assert by_reason["not JSON"]["raw"] == "this is not json"
    assert by_reason["JSON is not an event object"]["raw"] == "[1, 2, 3]"
    assert "event_id: missing" in by_reason["not an audit event"]["reason"]
    assert base64.b64decode(by_reason["invalid UTF-8 at byte 14"]["raw_base64"]) == bad_lines[3]
    torn = next(c for c in corrupt if c["reason"].startswith("torn last line"))
    assert "raw_base64" in torn
    assert all(c["source"] == "audit_dlq_fallback.jsonl" and isinstance(c["offset"], int) for c in corrupt)
    with dlq.path("fallback").open("rb") if dlq.path().exists() else open("/dev/null", "rb") as handle:
        assert handle.read() == b""
    assert not list(sweep_env.dir.glob("audit_dlq_fallback*"))
    report = json.loads(json.dumps(report_of(state)["markdown"]))
    assert "duplicates: 1" in report


def test_events_appended_by_other_processes_while_sweeping_are_replayed_exactly_once(sweep_env: SweepEnv) -> None:
    seed = make_events(300)
    sweep_env.dlq.append(seed)
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    writers = [context.Process(target=_keep_writing, args=(str(sweep_env.dir), stop, w)) for w in range(2)]
    for process in writers:
        process.start()
    try:
        states = []
        runner = threading.Thread(target=lambda: states.append(sweep(batch_size=25)))
        runner.start()
        states.append(sweep(batch_size=25))  # a second sweep at the same time
        runner.join(120)
    finally:
        stop.set()
        for process in writers:
            process.join(30)
    assert all(s.is_completed() for s in states), [s.message for s in states]
    assert sweep().is_completed()  # what the writers added after the claims

    written = {e.event_id for e in seed} | {e["event_id"] for e in _all_written(sweep_env.dir)}
    assert len(written) > 300
    assert set(sweep_env.backend.events) == written
    assert max(sweep_env.backend.deliveries.values()) == 1, "no event replayed twice"


def _keep_writing(directory: str, stop: Any, writer: int) -> None:
    dlq = DeadLetterQueue(Path(directory))
    log = Path(directory).parent / f"written-{writer}.jsonl"
    with log.open("a") as record:
        while not stop.is_set():
            batch = make_events(5, writer=writer)
            dlq.append(batch)
            record.write("".join(e.to_json_line() + "\n" for e in batch))
            record.flush()
            time.sleep(0.01)


def _all_written(dlq_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in dlq_dir.parent.glob("written-*.jsonl") for line in p.read_text().splitlines()]


def test_one_firing_and_one_resolved_across_a_sequence_of_sweeps(
    sweep_env: SweepEnv, caplog: pytest.LogCaptureFixture
) -> None:
    audit_metrics.get_alert_manager().alert_threshold = 100
    sweep_env.dlq.append(make_events(150))
    sweep_env.backend.fail_with = 503
    caplog.set_level(logging.DEBUG)

    first = sweep()
    second = sweep()  # still down, still past the threshold: no second notification
    sweep_env.backend.fail_with = None
    third = sweep()
    fourth = sweep()

    assert first.name == second.name == "AuditSinkUnavailable" and third.is_completed() and fourth.is_completed()
    statuses = [(n["status"], n["alerts"][0]["labels"]["alertname"]) for n in sweep_env.webhook.received]
    assert statuses == [("firing", "OmsAuditDlqTooLarge"), ("resolved", "OmsAuditDlqTooLarge")]
    firing, resolved = sweep_env.webhook.received
    assert firing["alerts"][0]["labels"]["dlq_type"] == "fallback" and firing["version"] == "4"
    assert firing["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["alerts"][0]["startsAt"] == firing["alerts"][0]["startsAt"]
    assert resolved["alerts"][0]["endsAt"] > resolved["alerts"][0]["startsAt"]
    secret = "s3cr3t-path-token"
    assert secret not in caplog.text
    assert all(secret not in (s.message or "") for s in (first, second, third, fourth))
    assert secret not in str(Artifact.get("dlq-sweep-summary").data)  # type: ignore[union-attr]


def test_webhook_down_is_a_clear_failure_that_loses_nothing_and_is_sent_later(
    sweep_env: SweepEnv, caplog: pytest.LogCaptureFixture
) -> None:
    audit_metrics.get_alert_manager().alert_threshold = 0
    events = make_events(3)
    sweep_env.dlq.append(events)
    sweep_env.backend.reject = {events[0].event_id: "refused"}  # stays in the DLQ: the alert keeps firing
    sweep_env.webhook.fail_with = 500
    caplog.set_level(logging.DEBUG)

    state = sweep()

    assert state.is_failed() and state.name == "AlertDeliveryFailed"
    assert "DLQ_ALERT_WEBHOOK" in (state.message or "") and "HTTP 500" in (state.message or "")
    assert sweep_env.webhook.attempts == 3, "one try and two retries"
    assert "s3cr3t-path-token" not in caplog.text and "s3cr3t-path-token" not in (state.message or "")
    assert set(sweep_env.backend.events) == {e.event_id for e in events[1:]}, "the replay itself went on"
    assert [line["event_id"] for line in dlq_lines(sweep_env.dlq, "fallback")] == [events[0].event_id]

    sweep_env.webhook.fail_with = None
    assert sweep().is_completed()  # the firing alert, not delivered before, is sent now
    sweep_env.backend.reject = {}
    assert sweep().is_completed()
    assert [n["status"] for n in sweep_env.webhook.received] == ["firing", "resolved"]


@pytest.mark.parametrize("how", ["down", "4xx"])
def test_pushgateway_down_or_refusing_ends_metrics_push_failed_without_losing_data(
    sweep_env: SweepEnv, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if how == "down" else f"{sweep_env.pushgateway.url}/no-such-prefix"
    monkeypatch.setenv("PROMETHEUS_PUSHGATEWAY_URL", url)
    events = make_events(4)
    sweep_env.dlq.append(events)

    state = sweep()

    assert state.is_failed() and state.name == "MetricsPushFailed"
    assert "Pushgateway" in (state.message or "") and "No DLQ data was lost" in (state.message or "")
    if how == "4xx":
        assert "HTTP 404" in (state.message or "")
    assert set(sweep_env.backend.events) == {e.event_id for e in events}
    assert not list(sweep_env.dir.glob("audit_dlq_fallback*"))


def test_dry_run_changes_nothing(sweep_env: SweepEnv) -> None:
    sweep_env.dlq.append(make_events(4))
    sweep_env.dlq.append_raw([b"junk"], "fallback")
    before = sweep_env.dlq.path().read_bytes()

    state = sweep(dry_run=True)

    assert state.is_completed() and "would replay 4" in (state.message or "")
    assert sweep_env.dlq.path().read_bytes() == before
    assert sweep_env.backend.events == {} and sweep_env.webhook.received == []
    assert sweep_env.pushgateway.samples("oms_audit_dlq_size") == {}


def test_missing_dlq_folder_is_a_clear_error(sweep_env: SweepEnv, tmp_path: Path) -> None:
    state = sweep(dlq_dir=str(tmp_path / "nowhere"))
    assert state.is_failed()
    assert "does not exist" in (state.message or "") and "OMS_AUDIT_DLQ_DIR" in (state.message or "")


def test_replay_into_the_metadata_database_exactly_once(
    sweep_env: SweepEnv, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = f"meta_{uuid.uuid4().hex[:8]}"
    for name, value in {
        "TERMINUS_DB_URL": sandbox.url,
        "TERMINUS_DB_TOKEN": ADMIN_TOKEN,
        "OMS_AUDIT_META_DB": meta,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AUDIT_BACKEND_URL")
    events = make_events(60, age=timedelta(minutes=5))
    sweep_env.dlq.append(events[:40])
    sweep_env.dlq.append(events[:10])  # the emitter wrote some twice
    sweep_env.dlq.append(events[40:])
    try:
        assert sweep(batch_size=16).is_completed()
        settings = TerminusSettings(url=sandbox.url, token=ADMIN_TOKEN, meta_database=meta)
        with TerminusGateway(settings, database=meta, branch="main") as gateway:
            stored = [d["event_id"] for d in gateway.iter_documents(doc_type="AuditEvent")]
        assert sorted(stored) == sorted(e.event_id for e in events)
        assert AuditEvent  # the documents read back as events in test_audit_sink
    finally:
        with TerminusGateway(TerminusSettings(url=sandbox.url, token=ADMIN_TOKEN)) as gateway:
            gateway.delete_database(meta, missing_ok=True)
