"""Which configuration an ``--env NAME`` means.

Order (DESIGN §4): the Prefect block document named ``NAME`` when it exists, else the process environment
when it sets ``TERMINUS_DB_URL`` itself. Only ``--env local`` may fall back to the local defaults built into
the settings (the sandbox on 127.0.0.1:6363): any other name with neither a block nor ``TERMINUS_DB_URL`` is a
configuration error, never a silent run against a server nobody meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.errors import ConfigError
from core.settings import LOCAL_ENV, TerminusSettings, check_env_name, explicit_terminus_url, load_settings

from .terminus_connection import TerminusConnection


@dataclass(frozen=True)
class ResolvedTerminus:
    """Settings plus where they came from, so runs can say which configuration they used."""

    settings: TerminusSettings
    source: str


def _load_block(env: str) -> TerminusConnection | None:
    try:
        block = TerminusConnection.load(env)
    except ValueError:
        return None  # Prefect's "Unable to find block document named …"
    return block if isinstance(block, TerminusConnection) else None


@lru_cache(maxsize=32)
def resolve_terminus(env: str) -> ResolvedTerminus:
    """Cached per process; raises ConfigError for an invalid name or an environment nothing configures."""
    check_env_name(env)
    block = _load_block(env)
    if block is not None:
        return ResolvedTerminus(block.to_settings(), f"block {TerminusConnection.get_block_type_slug()}/{env}")
    if explicit_terminus_url():
        return ResolvedTerminus(load_settings(TerminusSettings), "environment")
    if env == LOCAL_ENV:
        return ResolvedTerminus(load_settings(TerminusSettings), "local defaults")
    raise ConfigError(
        f"Nothing configures TerminusDB for environment '{env}'. Either save a TerminusDB connection block "
        f"named '{env}' (TerminusConnection(url=..., token=...).save('{env}'), from blocks.terminus_connection), "
        "or set TERMINUS_DB_URL (with TERMINUS_DB_TOKEN, or TERMINUS_DB_USER and TERMINUS_DB_PASSWORD). "
        f"Only --env {LOCAL_ENV} falls back to the local defaults (http://127.0.0.1:6363).",
        variable="TERMINUS_DB_URL",
    )
