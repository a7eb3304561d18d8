"""How a block's fields map onto the settings classes of ``core.settings`` (one field may feed several)."""

from __future__ import annotations

from pydantic_settings import BaseSettings

SettingsTarget = tuple[type[BaseSettings], str]
"""(settings class, field name) a block field overrides."""
