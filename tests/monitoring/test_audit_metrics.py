"""The guide's monitoring snippets run as written; the sweep's registry and the alert state machine."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest

from core.audit import Actor, AuditEvent
from core.dlq import DeadLetterQueue, DlqStats
from core.monitoring import audit_metrics
from core.monitoring.audit_metrics import AlertManager, SweepResult, sweep_registry

# The guide's "Step 4: Start Monitoring" and "Step 5: Configure Alerts", character for character.
STEP_4 = """
# In your application startup
from core.monitoring.audit_metrics import get_metrics_collector

metrics = get_metrics_collector()
await metrics.start_monitoring()
"""
STEP_5 = """
from core.monitoring.audit_metrics import get_alert_manager

alert_manager = get_alert_manager()
# Configure thresholds
alert_manager.alert_threshold = 100  # Alert if DLQ > 100 events
alert_manager.age_threshold_seconds = 3600  # Alert if events > 1 hour old
"""


def _run_async_snippet(snippet: str) -> dict:
    """Run top-level-await code the way an application's async startup would."""
    namespace: dict = {}
    body = textwrap.indent(snippet, "    ")
    exec(f"async def _startup():\n{body}\n    return locals()\n", namespace)
    return asyncio.run(_with_stop(namespace["_startup"]))


async def _with_stop(startup) -> dict:  # type: ignore[no-untyped-def]
    names = await startup()
    collector = names["metrics"]
    assert collector.running
    await collector.stop_monitoring()
    assert not collector.running
    return names


@pytest.fixture(autouse=True)
def fresh_singletons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_metrics, "_collector", None)
    monkeypatch.setattr(audit_metrics, "_alert_manager", None)


def test_step_4_snippet_keeps_the_dlq_gauges_current_on_its_own_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dlq = DeadLetterQueue(tmp_path)
    dlq.append([AuditEvent.new(action="create", actor=Actor(id="u")) for _ in range(3)])
    monkeypatch.setenv("OMS_AUDIT_DLQ_DIR", str(tmp_path))
    monkeypatch.setenv("OMS_AUDIT_METRICS_PORT", "0")  # no service in this process: its own /metrics
    monkeypatch.setenv("OMS_AUDIT_METRICS_INTERVAL_SECONDS", "0.05")

    async def startup_scrape_and_stop() -> str:
        namespace: dict = {}
        exec(f"async def _startup():\n{textwrap.indent(STEP_4, '    ')}\n    return metrics\n", namespace)
        metrics = await namespace["_startup"]()
        assert metrics is audit_metrics.get_metrics_collector()
        first = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{metrics.http_port}/metrics")
        dlq.append([AuditEvent.new(action="update", actor=Actor(id="u"))])
        for _ in range(200):  # the interval refresh picks up the new line
            if audit_metrics.DLQ_SIZE.labels(dlq_type="fallback")._value.get() == 4:
                break
            await asyncio.sleep(0.05)
        await metrics.stop_monitoring()
        assert not metrics.running and metrics.http_port is None
        return first.text

    text = asyncio.run(startup_scrape_and_stop())
    assert 'oms_audit_dlq_size{dlq_type="fallback"} 3.0' in text
    assert 'oms_audit_dlq_oldest_event_age_seconds{dlq_type="fallback"}' in text
    assert 'oms_audit_dlq_size{dlq_type="poison"} 0.0' in text
    assert audit_metrics.DLQ_SIZE.labels(dlq_type="fallback")._value.get() == 4


def test_step_4_snippet_survives_a_missing_dlq_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMS_AUDIT_DLQ_DIR", str(tmp_path / "absent"))
    names = _run_async_snippet(STEP_4)
    assert names["metrics"].last_refresh is not None  # an absent folder is an empty DLQ


def test_step_5_snippet_sets_the_thresholds_the_sweep_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_ALERT_THRESHOLD", "7")
    assert audit_metrics.get_alert_manager().alert_threshold == 7
    namespace: dict = {}
    exec(STEP_5, namespace)
    manager = audit_metrics.get_alert_manager()
    assert manager is namespace["alert_manager"]
    assert (manager.alert_threshold, manager.age_threshold_seconds) == (100, 3600)


def test_counters_have_the_guides_names_and_labels() -> None:
    audit_metrics.AUDIT_EVENTS_TOTAL.labels(action="create", resource_type="ObjectType", success="true").inc()
    service = audit_metrics.service_name_of("svc_deployment")
    audit_metrics.SERVICE_ACCOUNT_OPERATIONS_TOTAL.labels(service_name=service, operation="create").inc()
    text = generate_latest().decode()
    assert 'oms_audit_events_total{action="create",resource_type="ObjectType",success="true"}' in text
    assert 'oms_service_account_operations_total{operation="create",service_name="deployment"}' in text


def test_sweep_registry_has_last_success_only_when_the_sweep_succeeded() -> None:
    oldest = datetime(2026, 11, 30, 12, tzinfo=UTC)
    now = oldest + timedelta(hours=2)
    stats = {"fallback": DlqStats(5, oldest)}
    ok = generate_latest(sweep_registry(stats, SweepResult(replayed=9, succeeded=True), now=now)).decode()
    failed = generate_latest(sweep_registry(stats, SweepResult(replayed=1), now=now)).decode()
    assert 'oms_audit_dlq_size{dlq_type="fallback"} 5.0' in ok
    assert 'oms_audit_dlq_oldest_event_age_seconds{dlq_type="fallback"} 7200.0' in ok
    assert 'oms_audit_dlq_oldest_event_timestamp_seconds{dlq_type="fallback"} 1.79604e+09' in ok
    assert 'oms_audit_dlq_size{dlq_type="corrupt"} 0.0' in ok
    assert 'oms_audit_dlq_oldest_event_timestamp_seconds{dlq_type="poison"}' not in ok
    assert 'oms_audit_dlq_sweep_events{outcome="replayed"} 9.0' in ok
    assert "oms_audit_dlq_sweep_last_success_timestamp_seconds" in ok
    assert "oms_audit_dlq_sweep_last_success_timestamp_seconds" not in failed


def test_alerts_fire_once_and_resolve_once(tmp_path: Path) -> None:
    manager = AlertManager(alert_threshold=2, age_threshold_seconds=3600)
    now = datetime.now(UTC)
    big = {"fallback": DlqStats(3, now)}
    (firing,) = manager.changes(big, tmp_path, now)
    assert (firing.alertname, firing.dlq_type, firing.status) == ("OmsAuditDlqTooLarge", "fallback", "firing")
    payload = firing.alertmanager_payload("prod")
    assert payload["status"] == "firing" and payload["alerts"][0]["labels"]["env"] == "prod"
    assert payload["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert manager.changes(big, tmp_path, now) == [firing], "not recorded as sent: offered again"
    manager.record(firing, tmp_path)
    assert manager.changes(big, tmp_path, now) == [], "one notification per condition change"
    later = now + timedelta(minutes=5)
    (resolved,) = manager.changes({"fallback": DlqStats(0, None)}, tmp_path, later)
    assert resolved.status == "resolved" and resolved.starts_at == firing.starts_at
    assert resolved.alertmanager_payload("prod")["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    manager.record(resolved, tmp_path)
    assert manager.changes({"fallback": DlqStats(0, None)}, tmp_path, later) == []


def test_age_alert_uses_the_age_threshold(tmp_path: Path) -> None:
    manager = AlertManager(alert_threshold=100, age_threshold_seconds=60)
    now = datetime.now(UTC)
    (change,) = manager.changes({"poison": DlqStats(1, now - timedelta(minutes=5))}, tmp_path, now)
    assert (change.alertname, change.dlq_type) == ("OmsAuditDlqTooOld", "poison")
