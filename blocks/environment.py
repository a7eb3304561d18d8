"""Which configuration an ``--env NAME`` means, for every setting of every job.

Order (DESIGN §4): the Prefect block documents named ``NAME`` when they exist, else the process environment,
else the built-in defaults. TerminusDB is stricter: its block is taken whole, and only ``--env local`` may
fall back to the local defaults (the sandbox on 127.0.0.1:6363); any other name with neither a block nor
``TERMINUS_DB_URL`` is a configuration error, never a silent run against a server nobody meant.

Every other block (IAM, Pushgateway, DLQ) overrides the settings fields it names (``SETTINGS`` on each
block class); fields no block sets come from the environment. The alert webhook is Prefect's own
``CustomWebhookNotificationBlock`` named ``NAME``, else ``DLQ_ALERT_WEBHOOK``. :func:`setting_sources` says
where each value came from, for ``oms-audit blocks show``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.types import SecretDict
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from core.settings import (
    LOCAL_ENV,
    MonitoringSettings,
    TerminusSettings,
    check_env_name,
    explicit_terminus_url,
    load_settings,
    unconfigured_terminus,
)

from .dlq import DlqConfig
from .iam import IamConfig
from .pushgateway import PushgatewayConfig
from .terminus_connection import TerminusConnection

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

CONFIG_BLOCKS: tuple[type[Block], ...] = (TerminusConnection, IamConfig, PushgatewayConfig, DlqConfig)
"""Our block types, in the order ``oms-audit blocks show`` lists them."""

WEBHOOK_SECRET_KEY = "webhook_url"
"""The webhook block's URL is ``{{webhook_url}}``, filled from its (masked) secrets: the URL is a secret."""


@dataclass(frozen=True)
class ResolvedTerminus:
    """Settings plus where they came from, so runs can say which configuration they used."""

    settings: TerminusSettings
    source: str


def block_source(block_cls: type[Block], env: str) -> str:
    return f"block {block_cls.get_block_type_slug()}/{env}"


@lru_cache(maxsize=64)
def load_block(block_cls: type[Block], env: str) -> Block | None:
    """The block document ``env`` of this type, or None when there is none (cached per process)."""
    try:
        block = block_cls.load(env)
    except ValueError:
        return None  # Prefect's "Unable to find block document named …"
    return block if isinstance(block, block_cls) else None


def forget_blocks() -> None:
    """Drop what this process remembers of block documents (after creating some)."""
    load_block.cache_clear()
    resolve_terminus.cache_clear()


@lru_cache(maxsize=32)
def resolve_terminus(env: str) -> ResolvedTerminus:
    """Cached per process; raises ConfigError for an invalid name or an environment nothing configures."""
    check_env_name(env)
    block = load_block(TerminusConnection, env)
    if isinstance(block, TerminusConnection):
        return ResolvedTerminus(block.to_settings(), block_source(TerminusConnection, env))
    if explicit_terminus_url():
        return ResolvedTerminus(load_settings(TerminusSettings), "environment")
    if env == LOCAL_ENV:
        return ResolvedTerminus(load_settings(TerminusSettings), "local defaults")
    raise unconfigured_terminus(env)


def _block_overrides(env: str, settings_cls: type[BaseSettings]) -> dict[str, tuple[Any, str]]:
    """settings field -> (value, source) from the blocks named ``env`` (TerminusDB's excluded: see above)."""
    found: dict[str, tuple[Any, str]] = {}
    for block_cls in CONFIG_BLOCKS:
        if block_cls is TerminusConnection:
            continue
        block = load_block(block_cls, env)
        if block is None:
            continue
        for block_field, targets in block_cls.SETTINGS.items():  # type: ignore[attr-defined]
            for target_cls, target_field in targets:
                if target_cls is settings_cls:
                    found[target_field] = (getattr(block, block_field), block_source(block_cls, env))
    return found


def resolve_settings(env: str, settings_cls: type[SettingsT]) -> SettingsT:
    """``settings_cls`` for ``env``: fields its blocks set, the rest from the environment (ConfigError if bad)."""
    check_env_name(env)
    if settings_cls is TerminusSettings:
        return resolve_terminus(env).settings  # type: ignore[return-value]
    overrides = {name: value for name, (value, _) in _block_overrides(env, settings_cls).items()}
    return load_settings(settings_cls, **overrides)


def _environment_variable(settings_cls: type[BaseSettings], name: str) -> str | None:
    alias = settings_cls.model_fields[name].validation_alias
    if not isinstance(alias, str):
        return None
    return next((key for key in os.environ if key.upper() == alias.upper() and os.environ[key].strip()), None)


@dataclass(frozen=True)
class SettingSource:
    """One setting as ``blocks show`` prints it: its value (masked when secret) and where it came from."""

    group: str
    name: str
    value: str
    source: str


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "(secret, set)"
    if value is None:
        return "(not set)"
    return str(value)


def setting_sources(env: str, settings_classes: tuple[type[BaseSettings], ...]) -> list[SettingSource]:
    """Every field of ``settings_classes`` for ``env`` with its source; never a secret's value."""
    rows: list[SettingSource] = []
    for settings_cls in settings_classes:
        group = settings_cls.__name__.removesuffix("Settings")
        if settings_cls is TerminusSettings:
            resolved = resolve_terminus(env)
            for name in TerminusSettings.model_fields:
                source = resolved.source
                if source == "environment":
                    variable = _environment_variable(TerminusSettings, name)
                    source = f"environment ({variable})" if variable else "default"
                rows.append(SettingSource(group, name, _shown(getattr(resolved.settings, name)), source))
            continue
        from_blocks = _block_overrides(env, settings_cls)
        settings = resolve_settings(env, settings_cls)
        for name in settings_cls.model_fields:
            if name in from_blocks:
                source = from_blocks[name][1]
            else:
                variable = _environment_variable(settings_cls, name)
                source = f"environment ({variable})" if variable else "default"
            rows.append(SettingSource(group, name, _shown(getattr(settings, name)), source))
    rows.append(SettingSource("Alerts", "webhook", *_webhook_row(env)))
    return rows


def _webhook_row(env: str) -> tuple[str, str]:
    block = load_block(CustomWebhookNotificationBlock, env)
    if block is not None:
        return "(secret, set)", block_source(CustomWebhookNotificationBlock, env)
    if resolve_settings(env, MonitoringSettings).dlq_alert_webhook is not None:
        return "(secret, set)", "environment (DLQ_ALERT_WEBHOOK)"
    return "(not set)", "default"


def webhook_from_url(url: SecretStr, *, timeout_seconds: float = 10.0) -> CustomWebhookNotificationBlock:
    """A webhook block posting to ``url``, the URL kept in the block's masked secrets."""
    return CustomWebhookNotificationBlock(  # type: ignore[call-arg]
        name="oms-audit-dlq",
        url="{{" + WEBHOOK_SECRET_KEY + "}}",
        secrets=SecretDict({WEBHOOK_SECRET_KEY: url.get_secret_value()}),
        timeout=timeout_seconds,
        allow_private_urls=True,  # the operator configures the URL; Alertmanager often lives on a private net
    )


def alert_webhook(env: str) -> tuple[CustomWebhookNotificationBlock | None, str]:
    """The alert webhook of ``env`` (its block, else ``DLQ_ALERT_WEBHOOK``) and where it came from."""
    block = load_block(CustomWebhookNotificationBlock, env)
    if isinstance(block, CustomWebhookNotificationBlock):
        return block, block_source(CustomWebhookNotificationBlock, env)
    url = resolve_settings(env, MonitoringSettings).dlq_alert_webhook
    if url is None:
        return None, "not set"
    return webhook_from_url(url), "environment (DLQ_ALERT_WEBHOOK)"
