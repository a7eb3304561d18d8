"""How approver and caller tokens are verified, as a Prefect block (the guide's ``IAM_*`` variables)."""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field

from core.settings import IamSettings

from .settings_map import SettingsTarget


class IamConfig(Block):
    """The IAM service (token verification) or a JWKS with its issuer and audience."""

    _block_type_name = "OMS Audit IAM"
    _block_type_slug = "oms-audit-iam"
    _description = "Where oms-audit verifies JWTs: the IAM service's verify endpoint, or a JWKS URL."

    service_url: str | None = Field(default=None, description="IAM service base URL (IAM_SERVICE_URL).")
    verification_endpoint: str = Field(
        default="/api/v1/verify", description="Verify path on the IAM service (IAM_VERIFICATION_ENDPOINT)."
    )
    jwks_url: str | None = Field(default=None, description="JWKS URL; wins over the IAM service (IAM_JWKS_URL).")
    issuer: str | None = Field(default=None, description="Expected iss of JWKS-verified tokens (IAM_ISSUER).")
    audience: str | None = Field(default=None, description="Expected aud of JWKS-verified tokens (IAM_AUDIENCE).")

    FIELDS: ClassVar[tuple[str, ...]] = ("service_url", "verification_endpoint", "jwks_url", "issuer", "audience")
    """The block's fields, each the ``IamSettings`` field of the same name."""

    SETTINGS: ClassVar[dict[str, tuple[SettingsTarget, ...]]] = {name: ((IamSettings, name),) for name in FIELDS}

    @classmethod
    def from_settings(cls, settings: IamSettings) -> IamConfig:
        """The block holding these settings (what ``oms-audit blocks create`` saves)."""
        return cls(**{name: getattr(settings, name) for name in cls.FIELDS})
