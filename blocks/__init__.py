"""Prefect block types holding oms-audit's configuration; ``prefect block register -m blocks`` registers them.

One document of each type per environment, named after it (``production``…): TerminusDB connection, IAM,
Pushgateway, DLQ, and the alert webhook as Prefect's own ``CustomWebhookNotificationBlock``.
``oms-audit blocks create --env NAME`` makes them from the guide's environment variables.
"""

from prefect.blocks.notifications import CustomWebhookNotificationBlock

from .dlq import DlqConfig
from .iam import IamConfig
from .pushgateway import PushgatewayConfig
from .terminus_connection import TerminusConnection

__all__ = ["CustomWebhookNotificationBlock", "DlqConfig", "IamConfig", "PushgatewayConfig", "TerminusConnection"]
