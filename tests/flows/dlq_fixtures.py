"""Fixtures for the DLQ sweep tests: a real Pushgateway, a webhook receiver, an audit backend, and the
environment wiring a sweep to them (imported by the test modules that use them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from blocks.environment import resolve_terminus
from core.audit import Actor, AuditEvent
from core.dlq import DeadLetterQueue
from core.monitoring import audit_metrics
from tests.servers import AuditBackend, Pushgateway, WebhookReceiver, serving


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    gateway = Pushgateway(tmp_path_factory.mktemp("pushgateway"))
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with serving(receiver):
        yield receiver


@pytest.fixture
def backend() -> Iterator[AuditBackend]:
    server = AuditBackend()
    with serving(server):
        yield server


@dataclass
class SweepEnv:
    dlq: DeadLetterQueue
    backend: AuditBackend
    pushgateway: Pushgateway
    webhook: WebhookReceiver

    @property
    def dir(self) -> Path:
        return self.dlq.directory


@pytest.fixture
def sweep_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: AuditBackend,
    pushgateway: Pushgateway,
    webhook: WebhookReceiver,
) -> Iterator[SweepEnv]:
    """A DLQ folder, the sweep wired to the backend, Pushgateway and webhook, with short retry delays."""
    dlq_dir = tmp_path / "dlq"
    dlq_dir.mkdir()
    pushgateway.wipe()
    for name, value in {
        "OMS_AUDIT_DLQ_DIR": str(dlq_dir),
        "AUDIT_BACKEND_URL": backend.url,
        "PROMETHEUS_PUSHGATEWAY_URL": pushgateway.url,
        "DLQ_ALERT_WEBHOOK": webhook.url,
        "OMS_AUDIT_SINK_ATTEMPTS": "2",
        "OMS_AUDIT_SINK_RETRY_DELAY_SECONDS": "0.01",
        "OMS_AUDIT_ALERT_RETRIES": "2",
        "OMS_AUDIT_ALERT_RETRY_DELAY_SECONDS": "0",
        "OMS_AUDIT_SWEEP_INSTANCE": "test-host",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(audit_metrics, "_alert_manager", None)
    resolve_terminus.cache_clear()
    yield SweepEnv(DeadLetterQueue(dlq_dir), backend, pushgateway, webhook)
    resolve_terminus.cache_clear()


def make_events(count: int, *, age: timedelta = timedelta(0), **extra: Any) -> list[AuditEvent]:
    enqueued = datetime.now(UTC) - age
    return [
        AuditEvent(
            event_id=str(uuid.uuid4()),
            occurred_at=enqueued,
            action="create",
            resource_type="ObjectType",
            resource_id=f"ObjectType/{n}",
            actor=Actor(id="u-1", username="alice", kind="user"),
            enqueued_at=enqueued,
            attempts=1,
            last_error={"type": "ConnectTimeout", "message": "timed out", "at": enqueued},
            **extra,
        )
        for n in range(count)
    ]


def dlq_lines(dlq: DeadLetterQueue, dlq_type: str) -> list[dict[str, Any]]:
    import json

    lines: list[dict[str, Any]] = []
    for path in dlq.files(dlq_type):
        lines.extend(json.loads(line) for line in path.read_bytes().splitlines() if line.strip())
    return lines
