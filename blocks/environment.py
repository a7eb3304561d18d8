"""Which configuration an ``--env NAME`` means.

Order (DESIGN §4): the Prefect block document named ``NAME`` when it exists, else the process environment
(the guide's variables), else the local defaults built into the settings (the sandbox on 127.0.0.1:6363).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from core.settings import TerminusSettings, load_settings

from .terminus_connection import TerminusConnection

_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")


@dataclass(frozen=True)
class ResolvedTerminus:
    """Settings plus where they came from, so runs can say which configuration they used."""

    settings: TerminusSettings
    source: str


def _load_block(env: str) -> TerminusConnection | None:
    if not _BLOCK_NAME.match(env):
        return None  # not a valid block document name, so no block can be called that
    try:
        block = TerminusConnection.load(env)
    except ValueError:
        return None  # Prefect's "Unable to find block document named …"
    return block if isinstance(block, TerminusConnection) else None


@lru_cache(maxsize=32)
def resolve_terminus(env: str) -> ResolvedTerminus:
    """Cached per process: tasks call this instead of carrying credentials in their parameters."""
    block = _load_block(env)
    if block is not None:
        return ResolvedTerminus(block.to_settings(), f"block {TerminusConnection.get_block_type_slug()}/{env}")
    return ResolvedTerminus(load_settings(TerminusSettings), "environment")
