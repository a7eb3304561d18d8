"""Where the nightly sweep pushes its metrics, as a Prefect block (``PROMETHEUS_PUSHGATEWAY_URL``)."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field

from core.monitoring.audit_metrics import SWEEP_JOB
from core.settings import MonitoringSettings

from .settings_map import SettingsTarget


class PushgatewayConfig(Block):
    """The Prometheus Pushgateway, the job the sweep pushes as and extra grouping labels."""

    _block_type_name = "OMS Audit Pushgateway"
    _block_type_slug = "oms-audit-pushgateway"
    _description = "Prometheus Pushgateway the oms-audit DLQ sweep pushes its batch metrics to."

    url: str = Field(description="Pushgateway URL (PROMETHEUS_PUSHGATEWAY_URL).")
    job: str = Field(default=SWEEP_JOB, description="Pushgateway job (OMS_AUDIT_PUSHGATEWAY_JOB).")
    grouping_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra grouping-key labels besides instance and env (OMS_AUDIT_PUSHGATEWAY_LABELS, JSON).",
    )

    SETTINGS: ClassVar[dict[str, tuple[SettingsTarget, ...]]] = {
        "url": ((MonitoringSettings, "pushgateway_url"),),
        "job": ((MonitoringSettings, "pushgateway_job"),),
        "grouping_labels": ((MonitoringSettings, "pushgateway_labels"),),
    }
