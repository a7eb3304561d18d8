"""The nightly DLQ sweep's steps: thin Prefect tasks over ``core.dlq`` / ``core.dlq_sweep``.

No secret travels through a task parameter: the webhook URL is read from the settings inside the task that
sends the notification, and errors about it never show it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from blocks.dlq import DlqConfig
from blocks.environment import WEBHOOK_SECRET_KEY, alert_webhook, load_block, resolve_settings
from core.audit import AuditSink
from core.dlq import ClaimedFile, Claimer, DeadLetterQueue
from core.dlq_sweep import (
    FileOutcome,
    PatternTally,
    RetryPolicy,
    SweepCounts,
    inspect_dlq,
    replay_file,
    report_markdown,
)
from core.errors import AlertDeliveryFailed
from core.monitoring.audit_metrics import (
    AlertChange,
    AlertManager,
    SweepResult,
    get_alert_manager,
    push_sweep_metrics,
    sweep_registry,
)
from core.settings import DlqSettings, MonitoringSettings, load_settings

SUMMARY_KEY = "dlq-sweep-summary"
PATTERNS_KEY = "dlq-sweep-error-patterns"
PROGRESS_INTERVAL_SECONDS = 1.0

SweepListener = Callable[[str, dict[str, Any]], None]
#: in-process listeners (the CLI's progress bar): called with ("start", {total_bytes}), ("advance",
#: {done_bytes, counts}) and ("done", {report}); a listener's failure never touches the sweep
LISTENERS: list[SweepListener] = []


def _tell(kind: str, **data: Any) -> None:
    for listener in list(LISTENERS):
        with contextlib.suppress(Exception):  # a broken progress bar must not break a sweep
            listener(kind, data)


@dataclass
class SweepProgress:
    """The run's progress artifact (bytes of claimed files done), updated at most once a second."""

    total_bytes: int
    artifact_id: UUID | None = None
    done_before: int = 0
    updated_at: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        self.artifact_id = create_progress_artifact(  # type: ignore[assignment]
            progress=0.0, key="dlq-sweep-progress", description=f"Replaying {self.total_bytes} bytes of DLQ"
        )
        _tell("start", total_bytes=self.total_bytes)

    def advance(self, done_bytes: int, counts: SweepCounts, *, force: bool = False) -> None:
        _tell("advance", done_bytes=done_bytes, counts=counts.as_dict())
        now = time.monotonic()
        if self.artifact_id is None or (not force and now - self.updated_at < PROGRESS_INTERVAL_SECONDS):
            return
        self.updated_at = now
        percent = 100.0 if not self.total_bytes else min(100.0, 100.0 * done_bytes / self.total_bytes)
        update_progress_artifact(
            self.artifact_id,
            progress=percent,
            description=f"replayed {counts.replayed}, re-queued {counts.requeued}, poisoned {counts.poisoned}, "
            f"corrupt {counts.corrupt}",
        )


@dataclass(frozen=True)
class SweepPlan:
    """The run's resolved parameters (no secrets)."""

    env: str
    dlq_dir: str
    batch_size: int
    max_attempts: int
    fsync: bool
    retry: RetryPolicy


def sweep_plan(env: str, dlq_dir: str | None, batch_size: int | None, max_attempts: int | None) -> SweepPlan:
    settings = resolve_settings(env, DlqSettings)
    retry = RetryPolicy(attempts=settings.sink_attempts, base_delay_seconds=settings.sink_retry_delay_seconds)
    return SweepPlan(
        env=env,
        dlq_dir=str(dlq_dir or settings.dlq_dir),
        batch_size=batch_size or settings.batch_size,
        max_attempts=max_attempts or settings.max_attempts,
        fsync=settings.fsync,
        retry=retry,
    )


@task(name="recover-claimed-files", cache_policy=NO_CACHE)
def recover_claimed_files(claimer: Claimer) -> list[ClaimedFile]:
    """Adopt the files a crashed sweep left claimed, resuming at their checkpoints."""
    adopted = claimer.recover("fallback")
    if adopted:
        get_run_logger().warning(
            "Adopted %d file(s) left claimed by a sweep that stopped: %s",
            len(adopted),
            ", ".join(f"{c.source_name} (from byte {c.start_offset})" for c in adopted),
        )
    return adopted


@task(name="claim-dlq-files", cache_policy=NO_CACHE)
def claim_dlq_files(claimer: Claimer) -> list[ClaimedFile]:
    """Rename each audit_dlq_fallback*.jsonl under the writers' lock; writers go on in fresh files."""
    claimed = claimer.claim("fallback")
    get_run_logger().info("Claimed %d DLQ file(s)", len(claimed))
    return claimed


@task(name="replay", task_run_name="replay-{claimed.source_name}", cache_policy=NO_CACHE)
def replay_claimed_file(
    claimer: Claimer,
    claimed: ClaimedFile,
    sink: AuditSink,
    plan: SweepPlan,
    tally: PatternTally,
    progress: SweepProgress,
) -> FileOutcome:
    """Stream one claimed file into the sink in batches; failures re-queued, poison, corrupt kept."""
    logger = get_run_logger()
    base = progress.done_before - claimed.start_offset

    def advance(_claimed: ClaimedFile, end: int, counts: SweepCounts) -> None:
        progress.advance(base + end, counts)

    outcome = replay_file(
        claimer,
        claimed,
        sink,
        batch_size=plan.batch_size,
        max_attempts=plan.max_attempts,
        retry=plan.retry,
        tally=tally,
        progress=advance,
    )
    progress.done_before += claimed.size if not outcome.finished else 0
    c = outcome.counts
    if outcome.sink_error:
        logger.error("%s left claimed for the next sweep: %s", claimed.source_name, outcome.sink_error)
    else:
        logger.info(
            "%s: replayed %d, re-queued %d, poisoned %d, corrupt %d, duplicates %d",
            claimed.source_name,
            c.replayed,
            c.requeued,
            c.poisoned,
            c.corrupt,
            c.duplicates,
        )
    return outcome


@task(name="inspect-dlq", cache_policy=NO_CACHE)
def inspect_dlq_files(dlq: DeadLetterQueue, tally: PatternTally) -> SweepCounts:
    """Dry run: read every fallback file (live and claimed) and change nothing."""
    return inspect_dlq(dlq, ("fallback",), tally)


@task(name="push-dlq-metrics", cache_policy=NO_CACHE)
def push_dlq_metrics(dlq: DeadLetterQueue, env: str, result: SweepResult) -> str:
    """``pushadd`` the DLQ gauges and the run's counts; raises ``MetricsPushFailed`` (no retry: the next
    nightly push supersedes it, and the replay is already done)."""
    settings = resolve_settings(env, MonitoringSettings)
    if not settings.pushgateway_url:
        get_run_logger().warning("PROMETHEUS_PUSHGATEWAY_URL is not set: DLQ metrics were not pushed")
        return "skipped (PROMETHEUS_PUSHGATEWAY_URL not set)"
    registry = sweep_registry(dlq.stats(), result)
    push_sweep_metrics(
        settings.pushgateway_url,
        registry,
        instance=sweep_instance(),
        env=env,
        job=settings.pushgateway_job,
        labels=settings.pushgateway_labels,
    )
    return "pushed"


def sweep_instance() -> str:
    """The grouping key's ``instance``: stable per host (``OMS_AUDIT_SWEEP_INSTANCE`` overrides)."""
    return load_settings(DlqSettings).sweep_instance or socket.gethostname()


@task(name="notify-dlq-alert", task_run_name="alert-{change.alertname}-{change.status}", cache_policy=NO_CACHE)
def send_alert(change: AlertChange, env: str) -> None:
    """POST one Alertmanager-shaped notification through a CustomWebhookNotificationBlock."""
    configured, _ = alert_webhook(env)
    if configured is None:
        raise AlertDeliveryFailed(reason="no alert webhook: neither a webhook block nor DLQ_ALERT_WEBHOOK is set")
    # the block's own json_data template wins (e.g. a chat tool's format); else Alertmanager's payload
    block = configured.model_copy(
        update={
            "json_data": configured.json_data or change.alertmanager_payload(env),
            "timeout": load_settings(DlqSettings).alert_timeout_seconds,
        }
    )
    secret = str(block.secrets.get_secret_value().get(WEBHOOK_SECRET_KEY) or block.url)
    try:
        with _hidden_from_logs(secret):
            block.notify(body=change.summary, subject=f"[{change.status.upper()}] {change.alertname}")
    except httpx.HTTPStatusError as exc:
        raise AlertDeliveryFailed(reason=f"the receiver answered HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise AlertDeliveryFailed(reason=f"{type(exc).__name__} while connecting") from None


class _DropSecret(logging.Filter):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self._needles = [secret, urlsplit(secret).path or secret]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(needle in text for needle in self._needles if len(needle) > 1)


@contextlib.contextmanager
def _hidden_from_logs(secret: str) -> Iterator[None]:
    """httpx logs every request's URL (at INFO); the webhook's URL is a secret, so drop those records."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore.connection", "httpcore.http11")]
    hide = _DropSecret(secret)
    for logger in loggers:
        logger.addFilter(hide)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(hide)


def _alert_manager_for(env: str) -> AlertManager:
    """The thresholds of the environment's DLQ block when it has one, else the process's alert manager."""
    if load_block(DlqConfig, env) is None:
        return get_alert_manager()
    settings = resolve_settings(env, MonitoringSettings)
    return AlertManager(settings.dlq_alert_threshold, settings.dlq_age_threshold_seconds)


def notify_dlq_alerts(dlq: DeadLetterQueue, env: str) -> tuple[list[dict[str, Any]], str | None]:
    """Send each condition change once (firing / resolved), retried; remember what was delivered.

    Returns (what was sent, the error of the first change that could not be delivered, if any).
    """
    manager = _alert_manager_for(env)
    changes = manager.changes(dlq.stats(), dlq.directory)
    if not changes:
        return [], None
    if alert_webhook(env)[0] is None:
        get_run_logger().warning(
            "No alert webhook (block or DLQ_ALERT_WEBHOOK): %d alert change(s) not sent", len(changes)
        )
        return [{"alert": c.key, "status": c.status, "delivered": False} for c in changes], None
    settings = load_settings(DlqSettings)
    sender = send_alert.with_options(
        retries=settings.alert_retries, retry_delay_seconds=settings.alert_retry_delay_seconds
    )
    sent: list[dict[str, Any]] = []
    error: str | None = None
    for change in changes:
        state = sender(change, env, return_state=True)
        delivered = state.is_completed()
        if delivered:
            manager.record(change, dlq.directory)
        elif error is None:
            failure = state.result(raise_on_failure=False)
            error = str(failure) if isinstance(failure, BaseException) else (state.message or "failed")
        sent.append({"alert": change.key, "status": change.status, "delivered": delivered})
    return sent, error


@task(name="publish-sweep-summary", cache_policy=NO_CACHE)
def publish_sweep_summary(report: dict[str, Any]) -> None:
    create_markdown_artifact(markdown=report_markdown(report), key=SUMMARY_KEY, description="DLQ sweep summary")
    if report.get("patterns"):
        create_table_artifact(
            table=report["patterns"], key=PATTERNS_KEY, description="DLQ error patterns (the quarterly review)"
        )
    _tell("done", report=report)


def now_utc() -> datetime:
    return datetime.now(UTC)


def open_sink(env: str) -> AuditSink:
    """The environment's audit sink: AUDIT_BACKEND_URL when set, else the metadata database of ``env``."""
    from blocks.environment import resolve_terminus
    from core.audit import open_audit_sink
    from core.settings import AuditSinkSettings, TerminusSettings

    sink = resolve_settings(env, AuditSinkSettings)
    # an external backend needs no TerminusDB: do not demand one for this environment
    terminus = load_settings(TerminusSettings) if sink.backend_url else resolve_terminus(env).settings
    return open_audit_sink(sink, terminus)
