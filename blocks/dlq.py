"""The audit dead-letter queue's folder and alert thresholds, as a Prefect block (``OMS_AUDIT_DLQ_*``)."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field

from core.settings import DlqSettings, MonitoringSettings

from .settings_map import SettingsTarget


class DlqConfig(Block):
    """Where the DLQ files live, when they page someone and how the sweep replays them."""

    _block_type_name = "OMS Audit DLQ"
    _block_type_slug = "oms-audit-dlq"
    _description = "The oms-audit dead-letter queue: directory, alert thresholds, replay policy."

    directory: str = Field(
        default="/tmp", description="DLQ folder shared by writers and the sweep (OMS_AUDIT_DLQ_DIR)."
    )
    alert_threshold: int = Field(default=100, ge=0, description="Page when more events wait (DLQ_ALERT_THRESHOLD).")
    age_threshold_seconds: float = Field(
        default=3600, gt=0, description="Page when the oldest event is older (DLQ_AGE_THRESHOLD_SECONDS)."
    )
    max_attempts: int = Field(default=5, ge=1, description="Replays before an event goes to poison.")
    batch_size: int = Field(default=500, ge=1, description="Events per sink call during a sweep.")

    SETTINGS: ClassVar[dict[str, tuple[SettingsTarget, ...]]] = {
        "directory": ((DlqSettings, "dlq_dir"), (MonitoringSettings, "dlq_dir")),
        "alert_threshold": ((MonitoringSettings, "dlq_alert_threshold"),),
        "age_threshold_seconds": ((MonitoringSettings, "dlq_age_threshold_seconds"),),
        "max_attempts": ((DlqSettings, "max_attempts"),),
        "batch_size": ((DlqSettings, "batch_size"),),
    }
