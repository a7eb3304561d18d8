"""The TerminusDB connection as a Prefect block, so each environment's target lives in Prefect, not in code.

A block document named after the environment (``production``, ``staging``…) is what ``--env NAME`` selects;
see :mod:`blocks.environment` for the lookup order.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from core.settings import TERMINUS_BLOCK_SLUG, TerminusSettings, load_settings

from .settings_map import SettingsTarget


class TerminusConnection(Block):
    """Where the ontology store lives and how to authenticate against it."""

    _block_type_name = "OMS Audit TerminusDB Connection"
    _block_type_slug = TERMINUS_BLOCK_SLUG
    _description = "TerminusDB server, team, database and credentials used by the oms-audit jobs."

    url: str = Field(default="http://127.0.0.1:6363", description="TerminusDB server URL (TERMINUS_DB_URL).")
    team: str = Field(default="admin", description="Team / organisation (TERMINUS_DB_TEAM).")
    database: str = Field(default="oms", description="Ontology database (TERMINUS_DB_NAME).")
    branch: str = Field(default="main", description="Branch to migrate (TERMINUS_DB_BRANCH).")
    user: str = Field(default="admin", description="User for basic auth when no token is set.")
    password: SecretStr = Field(default=SecretStr("root"), description="Password for basic auth.")
    token: SecretStr | None = Field(default=None, description="API token (TERMINUS_DB_TOKEN); wins over user.")
    meta_database: str = Field(default="oms_audit", description="Database holding runs, leases and events.")
    token_scheme: Literal["Bearer", "Token"] | None = Field(
        default=None,
        description="How the token is sent (TERMINUS_DB_TOKEN_SCHEME); empty: chosen from the URL "
        "(Token for TerminusCMS / DFRNT, else Bearer).",
    )

    FIELDS: ClassVar[tuple[str, ...]] = (
        "url",
        "team",
        "database",
        "branch",
        "user",
        "password",
        "token",
        "meta_database",
        "token_scheme",
    )
    """The block's fields, each the ``TerminusSettings`` field of the same name."""

    SETTINGS: ClassVar[dict[str, tuple[SettingsTarget, ...]]] = {name: ((TerminusSettings, name),) for name in FIELDS}
    """The block is taken whole (see blocks.environment)."""

    @classmethod
    def from_settings(cls, settings: TerminusSettings) -> TerminusConnection:
        """The block holding these settings (what ``oms-audit blocks create`` saves)."""
        return cls(**{name: getattr(settings, name) for name in cls.FIELDS})

    def to_settings(self) -> TerminusSettings:
        """The same settings object the environment would give, so core code never sees a block."""
        return load_settings(TerminusSettings, **{name: getattr(self, name) for name in self.FIELDS})
