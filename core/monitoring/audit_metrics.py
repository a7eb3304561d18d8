"""Every audit metric, the DLQ collector and the DLQ alert thresholds: the guide's steps 4 and 5, verbatim.

    from core.monitoring.audit_metrics import get_metrics_collector
    metrics = get_metrics_collector()
    await metrics.start_monitoring()

    from core.monitoring.audit_metrics import get_alert_manager
    alert_manager = get_alert_manager()
    alert_manager.alert_threshold = 100
    alert_manager.age_threshold_seconds = 3600

Two homes for metrics, the Prometheus way:

- the long-running write path counts into the process's default registry (``AUDIT_EVENTS_TOTAL``,
  ``SERVICE_ACCOUNT_OPERATIONS_TOTAL``, and the DLQ gauges the collector keeps current), scraped from
  ``/metrics`` (the service's, or the collector's own endpoint when no service runs);
- the nightly sweep is a batch job: it builds its own registry (:func:`sweep_registry`) and ``pushadd``-s it
  to the Pushgateway under a stable grouping key (:func:`push_sweep_metrics`). The last-success timestamp
  is in that registry only when the sweep succeeded, so a failed sweep leaves the previous value in place.

The alert manager decides *when* the DLQ pages someone and remembers, between runs, what it already said
(``.audit_dlq_alerts.json`` in the DLQ folder), so each condition change is notified once and a cleared
condition is notified as resolved. How the notification is sent (a Prefect block) is the caller's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, pushadd_to_gateway, start_http_server

from core.dlq import DLQ_TYPES, DeadLetterQueue, DlqStats
from core.errors import MetricsPushFailed
from core.settings import CollectorSettings, MonitoringSettings, load_settings
from core.timestamps import format_utc

__all__ = [
    "AUDIT_EVENTS_TOTAL",
    "DLQ_OLDEST_EVENT_AGE_SECONDS",
    "DLQ_OLDEST_EVENT_TIMESTAMP_SECONDS",
    "DLQ_SIZE",
    "SERVICE_ACCOUNT_OPERATIONS_TOTAL",
    "SWEEP_JOB",
    "AlertChange",
    "AlertManager",
    "MetricsCollector",
    "SweepResult",
    "get_alert_manager",
    "get_metrics_collector",
    "push_sweep_metrics",
    "service_name_of",
    "sweep_registry",
]

logger = logging.getLogger(__name__)

#: the Pushgateway ``job`` of the nightly sweep (part of its grouping key)
SWEEP_JOB: Final = "oms_audit_dlq_sweep"

# ----------------------------------------------------------------------------------------------------
# the write path's metrics (default registry, scraped from /metrics)

AUDIT_EVENTS_TOTAL: Final = Counter(
    "oms_audit_events_total",
    "Audit events emitted by the write path.",
    ["action", "resource_type", "success"],
)
SERVICE_ACCOUNT_OPERATIONS_TOTAL: Final = Counter(
    "oms_service_account_operations_total",
    "Operations performed by service accounts (service_name without the svc_ prefix).",
    ["service_name", "operation"],
)

_SIZE_NAME: Final = "oms_audit_dlq_size"
_SIZE_HELP: Final = "Events in the audit dead-letter queue."
_AGE_NAME: Final = "oms_audit_dlq_oldest_event_age_seconds"
_AGE_HELP: Final = "Age of the oldest event in the audit dead-letter queue (0 when empty)."
_OLDEST_NAME: Final = "oms_audit_dlq_oldest_event_timestamp_seconds"
_OLDEST_HELP: Final = "Unix time the oldest DLQ event was enqueued (absent when empty); age = time() - this."

DLQ_SIZE: Final = Gauge(_SIZE_NAME, _SIZE_HELP, ["dlq_type"])
DLQ_OLDEST_EVENT_AGE_SECONDS: Final = Gauge(_AGE_NAME, _AGE_HELP, ["dlq_type"])
DLQ_OLDEST_EVENT_TIMESTAMP_SECONDS: Final = Gauge(_OLDEST_NAME, _OLDEST_HELP, ["dlq_type"])


def service_name_of(principal_id: str) -> str:
    """``svc_deployment`` → ``deployment`` (the guide's ``service_name`` label)."""
    return principal_id.removeprefix("svc_")


def set_dlq_gauges(stats: Mapping[str, DlqStats], now: datetime | None = None) -> None:
    """Bring the default registry's DLQ gauges in line with ``stats``."""
    now = now or datetime.now(UTC)
    for dlq_type, item in stats.items():
        DLQ_SIZE.labels(dlq_type=dlq_type).set(item.count)
        DLQ_OLDEST_EVENT_AGE_SECONDS.labels(dlq_type=dlq_type).set(item.oldest_age_seconds(now))
        if item.oldest_enqueued_at is None:
            with contextlib.suppress(KeyError):
                DLQ_OLDEST_EVENT_TIMESTAMP_SECONDS.remove(dlq_type)
        else:
            DLQ_OLDEST_EVENT_TIMESTAMP_SECONDS.labels(dlq_type=dlq_type).set(item.oldest_enqueued_at.timestamp())


# ----------------------------------------------------------------------------------------------------
# the sweep's metrics (own registry, pushed)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did, as far as metrics are concerned."""

    replayed: int = 0
    requeued: int = 0
    poisoned: int = 0
    corrupt: int = 0
    duration_seconds: float = 0.0
    succeeded: bool = False


def sweep_registry(
    stats: Mapping[str, DlqStats], result: SweepResult, *, now: datetime | None = None
) -> CollectorRegistry:
    """A fresh registry with the DLQ gauges after the sweep, the run's counts, its duration, and (only when
    it succeeded) the last-success timestamp."""
    now = now or datetime.now(UTC)
    registry = CollectorRegistry(auto_describe=True)
    size = Gauge(_SIZE_NAME, _SIZE_HELP, ["dlq_type"], registry=registry)
    age = Gauge(_AGE_NAME, _AGE_HELP, ["dlq_type"], registry=registry)
    oldest = Gauge(_OLDEST_NAME, _OLDEST_HELP, ["dlq_type"], registry=registry)
    for dlq_type in DLQ_TYPES:
        item = stats.get(dlq_type, DlqStats(0, None))
        size.labels(dlq_type=dlq_type).set(item.count)
        age.labels(dlq_type=dlq_type).set(item.oldest_age_seconds(now))
        if item.oldest_enqueued_at is not None:
            oldest.labels(dlq_type=dlq_type).set(item.oldest_enqueued_at.timestamp())
    events = Gauge(
        "oms_audit_dlq_sweep_events",
        "Events the last sweep handled, by outcome (replayed, requeued, poisoned, corrupt).",
        ["outcome"],
        registry=registry,
    )
    for outcome in ("replayed", "requeued", "poisoned", "corrupt"):
        events.labels(outcome=outcome).set(getattr(result, outcome))
    Gauge("oms_audit_dlq_sweep_duration_seconds", "How long the last sweep took.", registry=registry).set(
        result.duration_seconds
    )
    Gauge("oms_audit_dlq_sweep_last_run_timestamp_seconds", "Unix time the last sweep ended.", registry=registry).set(
        now.timestamp()
    )
    if result.succeeded:
        Gauge(
            "oms_audit_dlq_sweep_last_success_timestamp_seconds",
            "Unix time the last successful sweep ended.",
            registry=registry,
        ).set(now.timestamp())
    return registry


def push_sweep_metrics(
    url: str,
    registry: CollectorRegistry,
    *,
    instance: str,
    env: str,
    timeout_seconds: float = 10.0,
    job: str = SWEEP_JOB,
    labels: Mapping[str, str] | None = None,
) -> None:
    """``pushadd`` the sweep's registry under ``{job=oms_audit_dlq_sweep, instance, env}``.

    Raises ``MetricsPushFailed`` (with the URL's credentials, if any, hidden) when the Pushgateway is down
    or refuses the push.
    """
    shown = _public_url(url)
    try:
        pushadd_to_gateway(
            url,
            job=job,
            registry=registry,
            grouping_key={**(labels or {}), "instance": instance, "env": env},
            timeout=timeout_seconds,
        )
    except OSError as exc:  # urllib's URLError / HTTPError, socket timeouts
        code = getattr(exc, "code", None)
        if code is not None:
            reason = f"HTTP {code}: {str(getattr(exc, 'reason', '') or '')[:200]}".rstrip(": ")
        else:
            reason = str(getattr(exc, "reason", None) or exc)[:200] or type(exc).__name__
        raise MetricsPushFailed(shown, reason=reason) from None


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"***@{host}{port}").geturl()


# ----------------------------------------------------------------------------------------------------
# the collector (guide step 4)


class MetricsCollector:
    """Keeps the DLQ gauges current from the DLQ folder on an interval.

    ``await start_monitoring()`` starts a background task (and, when ``OMS_AUDIT_METRICS_PORT`` or
    ``http_port`` is given, its own ``/metrics`` endpoint for processes without a service);
    ``await stop_monitoring()`` stops it cleanly. Starting twice is harmless.
    """

    def __init__(self, dlq: DeadLetterQueue | None = None, *, interval_seconds: float | None = None) -> None:
        self._dlq = dlq
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._http: Any = None
        self.http_port: int | None = None
        self.last_refresh: datetime | None = None
        self.last_error: str | None = None

    @property
    def dlq(self) -> DeadLetterQueue:
        if self._dlq is None:
            self._dlq = DeadLetterQueue(load_settings(MonitoringSettings).dlq_dir)
        return self._dlq

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def refresh(self) -> dict[str, DlqStats]:
        """Read the DLQ once and update the gauges; returns what it read."""
        stats = self.dlq.stats()
        set_dlq_gauges(stats)
        self.last_refresh = datetime.now(UTC)
        return stats

    async def start_monitoring(self, interval_seconds: float | None = None, *, http_port: int | None = None) -> None:
        if self.running:
            return
        settings = load_settings(CollectorSettings)
        interval = interval_seconds or self._interval or settings.interval_seconds
        port = http_port if http_port is not None else settings.port
        if port is not None and self._http is None:
            self._http = start_http_server(port, addr=settings.host, registry=REGISTRY)
            self.http_port = self._http[0].server_port
            logger.info("Serving audit metrics on http://%s:%s/metrics", settings.host, self.http_port)
        await asyncio.to_thread(self._refresh_quietly)
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(interval, self._stopping), name="oms-audit-dlq-metrics")

    async def stop_monitoring(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._http = None
            self.http_port = None

    async def _loop(self, interval: float, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=interval)
            if not stopping.is_set():
                await asyncio.to_thread(self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
            self.last_error = None
        except OSError as exc:  # a DLQ folder that vanished must not kill the application's monitoring
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("Could not read the DLQ for metrics: %s", self.last_error)


# ----------------------------------------------------------------------------------------------------
# alerts (guide step 5)

ALERT_STATE_FILE: Final = ".audit_dlq_alerts.json"
ZERO_TIME: Final = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class AlertChange:
    """A condition that started or stopped: what is sent, once."""

    alertname: str
    dlq_type: str
    status: Literal["firing", "resolved"]
    starts_at: str
    ends_at: str
    summary: str
    description: str
    value: float
    threshold: float

    @property
    def key(self) -> str:
        return f"{self.alertname}/{self.dlq_type}"

    def labels(self, env: str) -> dict[str, str]:
        return {
            "alertname": self.alertname,
            "dlq_type": self.dlq_type,
            "severity": "warning",
            "service": "oms-audit",
            "env": env,
        }

    def alertmanager_payload(self, env: str, *, external_url: str = "") -> dict[str, Any]:
        """The body Alertmanager's webhook receiver sends (version 4), holding this one alert."""
        labels = self.labels(env)
        annotations = {
            "summary": self.summary,
            "description": self.description,
            "value": f"{self.value:g}",
            "threshold": f"{self.threshold:g}",
        }
        fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{self.alertname}"}}',
            "truncatedAlerts": 0,
            "status": self.status,
            "receiver": "oms-audit-dlq",
            "groupLabels": {"alertname": self.alertname},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": external_url,
            "alerts": [
                {
                    "status": self.status,
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": self.starts_at,
                    "endsAt": self.ends_at,
                    "generatorURL": external_url,
                    "fingerprint": fingerprint,
                }
            ],
        }


class AlertManager:
    """When the DLQ pages someone: more than ``alert_threshold`` events, or an event older than
    ``age_threshold_seconds``, per DLQ type (``fallback`` and ``poison``; corrupt lines are for review)."""

    watched_types: tuple[str, ...] = ("fallback", "poison")

    def __init__(self, alert_threshold: int = 100, age_threshold_seconds: float = 3600) -> None:
        self.alert_threshold = alert_threshold
        self.age_threshold_seconds = age_threshold_seconds

    def firing(self, stats: Mapping[str, DlqStats], now: datetime | None = None) -> dict[str, tuple[str, str, float]]:
        """``{key: (alertname, dlq_type, observed value)}`` of every condition past its threshold now."""
        now = now or datetime.now(UTC)
        active: dict[str, tuple[str, str, float]] = {}
        for dlq_type in self.watched_types:
            item = stats.get(dlq_type, DlqStats(0, None))
            if item.count > self.alert_threshold:
                active[f"OmsAuditDlqTooLarge/{dlq_type}"] = ("OmsAuditDlqTooLarge", dlq_type, float(item.count))
            age = item.oldest_age_seconds(now)
            if item.count and age > self.age_threshold_seconds:
                active[f"OmsAuditDlqTooOld/{dlq_type}"] = ("OmsAuditDlqTooOld", dlq_type, age)
        return active

    def changes(self, stats: Mapping[str, DlqStats], state_dir: Path, now: datetime | None = None) -> list[AlertChange]:
        """Conditions that started or cleared since the last notification recorded in ``state_dir``."""
        now = now or datetime.now(UTC)
        stamp = format_utc(now)
        active = self.firing(stats, now)
        with _state(state_dir) as state:
            sent: dict[str, Any] = dict(state)
        result: list[AlertChange] = []
        for key, (alertname, dlq_type, value) in sorted(active.items()):
            if key not in sent:
                result.append(self._change(alertname, dlq_type, "firing", stamp, ZERO_TIME, value))
        for key, info in sorted(sent.items()):
            if key not in active:
                alertname, _, dlq_type = key.partition("/")
                result.append(self._change(alertname, dlq_type, "resolved", info["starts_at"], stamp, 0.0))
        return result

    def _change(
        self, alertname: str, dlq_type: str, status: Literal["firing", "resolved"], starts: str, ends: str, value: float
    ) -> AlertChange:
        if alertname == "OmsAuditDlqTooLarge":
            threshold: float = self.alert_threshold
            summary = f"Audit DLQ '{dlq_type}' holds more than {threshold:g} events"
            description = (
                f'oms_audit_dlq_size{{dlq_type="{dlq_type}"}} is {value:g} (threshold {threshold:g}). '
                "Check audit_dlq_*.jsonl for error patterns (`oms-audit dlq patterns`): network timeouts to "
                "the audit backend, invalid JWT tokens, missing user context."
                if status == "firing"
                else f"Audit DLQ '{dlq_type}' is back at or below {threshold:g} events."
            )
        else:
            threshold = self.age_threshold_seconds
            summary = f"Audit DLQ '{dlq_type}' has events older than {threshold:g}s"
            description = (
                f"The oldest '{dlq_type}' event is {value:.0f}s old (threshold {threshold:g}s): the sweep is "
                "not draining it. Check the audit sink and `oms-audit dlq stats`."
                if status == "firing"
                else f"No '{dlq_type}' event is older than {threshold:g}s any more."
            )
        return AlertChange(alertname, dlq_type, status, starts, ends, summary, description, value, threshold)

    @staticmethod
    def record(change: AlertChange, state_dir: Path) -> None:
        """Remember that ``change`` was delivered (call only after it was)."""
        with _state(state_dir, write=True) as state:
            if change.status == "firing":
                state[change.key] = {"starts_at": change.starts_at}
            else:
                state.pop(change.key, None)


@contextlib.contextmanager
def _state(state_dir: Path, *, write: bool = False) -> Iterator[dict[str, Any]]:
    """The alert state file, read (and rewritten when ``write``) under an exclusive lock."""
    path = state_dir / ALERT_STATE_FILE
    lock_path = state_dir / (ALERT_STATE_FILE + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            logger.warning("Alert state %s was unreadable; starting afresh", path.name)
            state = {}
        if not isinstance(state, dict):
            state = {}
        yield state
        if write:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(json.dumps(state, sort_keys=True))
            os.replace(temporary, path)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------------
# the guide's entry points

_lock = threading.Lock()
_collector: MetricsCollector | None = None
_alert_manager: AlertManager | None = None


def get_metrics_collector() -> MetricsCollector:
    """The process's one collector."""
    global _collector
    with _lock:
        if _collector is None:
            _collector = MetricsCollector()
        return _collector


def get_alert_manager() -> AlertManager:
    """The process's one alert manager, thresholds from ``DLQ_ALERT_THRESHOLD`` / ``DLQ_AGE_THRESHOLD_SECONDS``
    until set in code as the guide shows; the sweep uses it."""
    global _alert_manager
    with _lock:
        if _alert_manager is None:
            settings = load_settings(MonitoringSettings)
            _alert_manager = AlertManager(settings.dlq_alert_threshold, settings.dlq_age_threshold_seconds)
        return _alert_manager
