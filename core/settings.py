"""Configuration read from the environment, under the exact variable names of the deployment guide.

Each group is a pydantic-settings class whose fields carry the environment variable as alias, so
``TerminusSettings()`` reads ``TERMINUS_DB_URL`` and ``TerminusSettings(url=...)`` works in code and tests.
Use ``load_settings(cls, **overrides)`` rather than calling the class: it turns pydantic's ValidationError
into a ``ConfigError`` that names the variable, the bad value (never for secrets) and what is expected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

__all__ = [
    "LOCAL_ENV",
    "ApprovalSettings",
    "AuditSinkSettings",
    "CollectorSettings",
    "DlqSettings",
    "IamSettings",
    "MigrationSettings",
    "MonitoringSettings",
    "ServiceSettings",
    "TerminusSettings",
    "check_env_name",
    "check_target_names",
    "explicit_terminus_url",
    "load_settings",
]

LOCAL_ENV = "local"
"""The one environment allowed to fall back to the built-in defaults (the sandbox on 127.0.0.1:6363)."""

_ENV_NAME = re.compile(r"^[a-z0-9-]+$")


def check_env_name(env: str) -> str:
    """An environment is named like its TerminusDB connection block: lowercase letters, digits and dashes.

    Anything else (empty, ``../x``, ``Prod``) could never name a block, so it would silently mean "the
    environment variables" or worse the local defaults; it is refused instead.
    """
    if not env:
        raise ConfigError(
            "--env must name an environment such as production, staging or local (it is empty)", variable="env"
        )
    if not _ENV_NAME.match(env):
        raise ConfigError(
            f"--env {env!r} is not a valid environment name: use lowercase letters, digits and dashes, the "
            "name of its TerminusDB connection block (for example production or staging)",
            variable="env",
        )
    return env


TERMINUS_BLOCK_SLUG = "oms-audit-terminusdb-connection"
"""The block type of a TerminusDB connection (``blocks.terminus_connection``), named here so that the CLI
can look a block document up before it imports Prefect."""


def unconfigured_terminus(env: str) -> ConfigError:
    """The error for an environment with neither a TerminusDB connection block nor ``TERMINUS_DB_URL``."""
    return ConfigError(
        f"Nothing configures TerminusDB for environment '{env}'. Either save a TerminusDB connection block "
        f"named '{env}' (set TERMINUS_DB_URL and its credentials, then run: oms-audit blocks create --env {env}), "
        "or set TERMINUS_DB_URL (with TERMINUS_DB_TOKEN, or TERMINUS_DB_USER and TERMINUS_DB_PASSWORD) "
        f"where the run executes. Only --env {LOCAL_ENV} falls back to the local defaults (http://127.0.0.1:6363).",
        variable="TERMINUS_DB_URL",
    )


def explicit_terminus_url() -> bool:
    """Whether the process environment sets ``TERMINUS_DB_URL`` itself (not the built-in default)."""
    return any(key.upper() == "TERMINUS_DB_URL" and value.strip() for key, value in os.environ.items())


def check_target_names(settings: TerminusSettings, database: str | None, branch: str | None) -> tuple[str, str]:
    """The database and branch a run means (``None``: the configured one); refuses empty names and the
    metadata database, which holds the tool's own bookkeeping and is never migrated."""
    for option, value in (("--database", database), ("--branch", branch)):
        if value is not None and not value.strip():
            raise ConfigError(f"{option} must not be empty; leave it out to use the configured one", variable=option)
    chosen = database or settings.database
    if chosen == settings.meta_database:
        raise ConfigError(
            f"database '{chosen}' is the metadata database (OMS_AUDIT_META_DB), where oms-audit keeps its runs "
            "and leases; it is not migrated. Name the ontology database with --database or TERMINUS_DB_NAME",
            variable="OMS_AUDIT_META_DB",
        )
    return chosen, branch or settings.branch


def _check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host; trailing slashes dropped so paths can be appended."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an absolute http:// or https:// URL such as http://127.0.0.1:6363")
    return value.rstrip("/")


def _check_no_credentials(value: str) -> str:
    if urlsplit(value).username is not None or urlsplit(value).password is not None:
        raise ValueError(
            "the URL must not contain credentials; use TERMINUS_DB_USER and TERMINUS_DB_PASSWORD or TERMINUS_DB_TOKEN"
        )
    return value


def _check_secret_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        _check_http_url(value.get_secret_value())
    return value


def _check_path_endpoint(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("expected a path starting with '/', such as /api/v1/verify")
    return value


def _check_token_scheme(value: Any) -> Any:
    """``bearer``/``token`` in any case, named as the Authorization header spells them."""
    if isinstance(value, str):
        spelled = {"bearer": "Bearer", "token": "Token"}.get(value.strip().lower())
        if spelled is None:
            raise ValueError("expected Bearer (a self-hosted TerminusDB's JWT) or Token (TerminusCMS / DFRNT API key)")
        return spelled
    return value


TokenScheme = Annotated[Literal["Bearer", "Token"], BeforeValidator(_check_token_scheme)]
HOSTED_TOKEN_DOMAINS = ("terminusdb.com", "dfrnt.com")
"""Hosts of the hosted services whose API keys are sent as ``Authorization: Token <key>``."""

HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
SecretHttpUrl = Annotated[SecretStr | None, AfterValidator(_check_secret_url)]

_COMMON = SettingsConfigDict(populate_by_name=True, extra="ignore", case_sensitive=False, frozen=True)


class TerminusSettings(BaseSettings):
    """Where TerminusDB is and how to log in: the token if set, else user and password."""

    model_config = _COMMON

    url: Annotated[HttpUrl, AfterValidator(_check_no_credentials)] = Field(
        "http://127.0.0.1:6363", validation_alias="TERMINUS_DB_URL"
    )
    team: str = Field("admin", min_length=1, validation_alias="TERMINUS_DB_TEAM")
    token: SecretStr | None = Field(None, validation_alias="TERMINUS_DB_TOKEN")
    database: str = Field("oms", min_length=1, validation_alias="TERMINUS_DB_NAME")
    branch: str = Field("main", min_length=1, validation_alias="TERMINUS_DB_BRANCH")
    user: str = Field("admin", min_length=1, validation_alias="TERMINUS_DB_USER")
    password: SecretStr = Field(SecretStr("root"), validation_alias="TERMINUS_DB_PASSWORD")
    meta_database: str = Field("oms_audit", min_length=1, validation_alias="OMS_AUDIT_META_DB")
    timeout_seconds: float = Field(30.0, gt=0, validation_alias="TERMINUS_DB_TIMEOUT_SECONDS")
    token_scheme: TokenScheme | None = Field(None, validation_alias="TERMINUS_DB_TOKEN_SCHEME")

    @property
    def authorization_scheme(self) -> TokenScheme:
        """How the token is sent: ``TERMINUS_DB_TOKEN_SCHEME`` if set, else chosen from the URL.

        A self-hosted TerminusDB verifies ``Bearer`` (JWT) tokens and ignores ``Token`` (the request then
        runs as the anonymous user); the hosted TerminusCMS and DFRNT services expect their API keys as
        ``Token``. So hosts of those services default to ``Token``, every other host to ``Bearer``.
        """
        if self.token_scheme is not None:
            return self.token_scheme
        host = (urlsplit(self.url).hostname or "").lower()
        hosted = any(host == domain or host.endswith("." + domain) for domain in HOSTED_TOKEN_DOMAINS)
        return "Token" if hosted else "Bearer"


# ---- write path (identity, the service, audit delivery) ---------------------------------------------


class IamSettings(BaseSettings):
    """How caller tokens are verified: a local JWKS if ``jwks_url`` is set, else the IAM service."""

    model_config = _COMMON

    service_url: HttpUrl | None = Field(None, validation_alias="IAM_SERVICE_URL")
    verification_endpoint: Annotated[str, AfterValidator(_check_path_endpoint)] = Field(
        "/api/v1/verify", validation_alias="IAM_VERIFICATION_ENDPOINT"
    )
    jwks_url: HttpUrl | None = Field(None, validation_alias="IAM_JWKS_URL")
    issuer: str | None = Field(None, validation_alias="IAM_ISSUER")
    audience: str | None = Field(None, validation_alias="IAM_AUDIENCE")
    timeout_seconds: float = Field(5.0, gt=0, validation_alias="IAM_TIMEOUT_SECONDS")
    #: verdict cache (0 = off): never longer than the token's own exp
    cache_ttl_seconds: int = Field(0, ge=0, validation_alias="IAM_CACHE_TTL_SECONDS")
    leeway_seconds: int = Field(30, ge=0, le=300, validation_alias="IAM_LEEWAY_SECONDS")
    #: the JWKS is fetched again for an unknown kid at most this often
    jwks_min_refresh_seconds: float = Field(30.0, ge=0, validation_alias="IAM_JWKS_MIN_REFRESH_SECONDS")
    #: retries of the IAM call on connection errors only (never on a reply)
    connect_retries: int = Field(2, ge=0, le=10, validation_alias="IAM_CONNECT_RETRIES")


class ServiceSettings(BaseSettings):
    """The HTTP service's limits and its audit delivery policy."""

    model_config = _COMMON

    max_body_bytes: int = Field(1_048_576, gt=0, validation_alias="OMS_AUDIT_MAX_BODY_BYTES")
    #: how long one sink delivery may take before its events go to the DLQ
    audit_timeout_seconds: float = Field(2.0, gt=0, validation_alias="OMS_AUDIT_SINK_TIMEOUT_SECONDS")
    #: events arriving within this window are delivered in one sink call
    audit_batch_window_ms: float = Field(3.0, ge=0, le=1000, validation_alias="OMS_AUDIT_BATCH_WINDOW_MS")
    audit_max_batch: int = Field(500, gt=0, validation_alias="OMS_AUDIT_MAX_BATCH")
    #: sink calls that may be in flight at once (more: lower latency; fewer: bigger batches). One: the events
    #: arriving during a call make the next batch, which cut the sandbox's CPU per audited write (bench/RESULTS.md)
    audit_max_in_flight: int = Field(1, gt=0, le=64, validation_alias="OMS_AUDIT_MAX_IN_FLIGHT")
    #: how often the service re-reads the write-freeze flag
    freeze_poll_seconds: float = Field(0.5, gt=0, le=60, validation_alias="OMS_AUDIT_FREEZE_POLL_SECONDS")


# ---- end of write path ------------------------------------------------------------------------------


class MonitoringSettings(BaseSettings):
    """Pushgateway, the DLQ directory and when the DLQ pages someone (a webhook URL is a secret)."""

    model_config = _COMMON

    pushgateway_url: HttpUrl | None = Field(None, validation_alias="PROMETHEUS_PUSHGATEWAY_URL")
    dlq_alert_webhook: SecretHttpUrl = Field(None, validation_alias="DLQ_ALERT_WEBHOOK")
    dlq_dir: Path = Field(Path("/tmp"), validation_alias="OMS_AUDIT_DLQ_DIR")
    dlq_alert_threshold: int = Field(100, ge=0, validation_alias="DLQ_ALERT_THRESHOLD")
    dlq_age_threshold_seconds: float = Field(3600, gt=0, validation_alias="DLQ_AGE_THRESHOLD_SECONDS")
    pushgateway_job: str = Field("oms_audit_dlq_sweep", min_length=1, validation_alias="OMS_AUDIT_PUSHGATEWAY_JOB")
    #: extra grouping-key labels of the sweep's push (JSON object), besides instance and env
    pushgateway_labels: dict[str, str] = Field(default_factory=dict, validation_alias="OMS_AUDIT_PUSHGATEWAY_LABELS")


# ---- audit sink and DLQ (the DLQ sweep) -------------------------------------------------------------


class AuditSinkSettings(BaseSettings):
    """Where audit events are stored: an external backend when ``AUDIT_BACKEND_URL`` is set, else the
    metadata database."""

    model_config = _COMMON

    backend_url: HttpUrl | None = Field(None, validation_alias="AUDIT_BACKEND_URL")
    timeout_seconds: float = Field(5.0, gt=0, validation_alias="AUDIT_BACKEND_TIMEOUT_SECONDS")


class DlqSettings(BaseSettings):
    """The dead-letter queue's folder, durability and replay policy."""

    model_config = _COMMON

    dlq_dir: Path = Field(Path("/tmp"), validation_alias="OMS_AUDIT_DLQ_DIR")
    fsync: bool = Field(False, validation_alias="OMS_AUDIT_DLQ_FSYNC")
    max_attempts: int = Field(5, ge=1, validation_alias="OMS_AUDIT_DLQ_MAX_ATTEMPTS")
    batch_size: int = Field(500, ge=1, le=100_000, validation_alias="OMS_AUDIT_DLQ_BATCH_SIZE")
    sink_attempts: int = Field(4, ge=1, le=20, validation_alias="OMS_AUDIT_SINK_ATTEMPTS")
    sink_retry_delay_seconds: float = Field(1.0, ge=0, validation_alias="OMS_AUDIT_SINK_RETRY_DELAY_SECONDS")
    alert_retries: int = Field(3, ge=0, le=20, validation_alias="OMS_AUDIT_ALERT_RETRIES")
    alert_retry_delay_seconds: float = Field(2.0, ge=0, validation_alias="OMS_AUDIT_ALERT_RETRY_DELAY_SECONDS")
    alert_timeout_seconds: float = Field(10.0, gt=0, validation_alias="OMS_AUDIT_ALERT_TIMEOUT_SECONDS")
    sweep_instance: str | None = Field(None, min_length=1, validation_alias="OMS_AUDIT_SWEEP_INSTANCE")


class CollectorSettings(BaseSettings):
    """How often the DLQ gauges are refreshed, and the collector's own ``/metrics`` endpoint (off unless a
    port is set: a service exposes them on its own ``/metrics``)."""

    model_config = _COMMON

    interval_seconds: float = Field(15.0, gt=0, validation_alias="OMS_AUDIT_METRICS_INTERVAL_SECONDS")
    port: int | None = Field(None, ge=0, le=65535, validation_alias="OMS_AUDIT_METRICS_PORT")
    host: str = Field("127.0.0.1", min_length=1, validation_alias="OMS_AUDIT_METRICS_HOST")


# ---- end of audit sink and DLQ -----------------------------------------------------------------------


class ApprovalSettings(BaseSettings):
    """Who may answer an approval: verified approvers only, and never the person who triggered the run."""

    model_config = _COMMON

    require_verified: bool = Field(False, validation_alias="OMS_AUDIT_REQUIRE_VERIFIED_APPROVAL")
    four_eyes: bool = Field(False, validation_alias="OMS_AUDIT_FOUR_EYES")


class MigrationSettings(BaseSettings):
    """Where migration reports go and which service account the migration commits as."""

    model_config = _COMMON

    reports_dir: Path = Field(Path("."), validation_alias="OMS_AUDIT_REPORTS_DIR")
    service_account: str = Field("svc_deployment", min_length=1, validation_alias="OMS_AUDIT_SERVICE_ACCOUNT")
    #: a lease not renewed for this long may be taken over by another run (on another host: the only way)
    lease_ttl_seconds: float = Field(300.0, gt=0, validation_alias="OMS_AUDIT_LEASE_TTL_SECONDS")
    #: how often a working run renews its lease; must be well below the TTL
    lease_renew_seconds: float = Field(60.0, gt=0, validation_alias="OMS_AUDIT_LEASE_RENEW_SECONDS")

    @model_validator(mode="after")
    def _renew_within_ttl(self) -> MigrationSettings:
        if self.lease_renew_seconds >= self.lease_ttl_seconds:
            raise ValueError(
                f"OMS_AUDIT_LEASE_RENEW_SECONDS ({self.lease_renew_seconds:g}) must be below "
                f"OMS_AUDIT_LEASE_TTL_SECONDS ({self.lease_ttl_seconds:g}), or the lease expires between renewals"
            )
        return self


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Read ``cls`` from the environment (``overrides`` by field name win) or raise ``ConfigError``."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = [_describe(cls, error) for error in exc.errors()]
        names = [p[0] for p in problems]
        raise ConfigError(
            "Invalid configuration: " + "; ".join(p[1] for p in problems),
            variable=names[0] if names else None,
        ) from None


def _describe(cls: type[BaseSettings], error: Any) -> tuple[str, str]:
    """(variable name, 'NAME=value: what is expected') for one pydantic error, hiding secret values."""
    if not error.get("loc"):  # a rule across fields: its message names the variables
        return "?", str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    loc = error.get("loc")
    key = str(loc[0])
    field = _find_field(cls, key)
    variable = key
    if field is not None and isinstance(field.validation_alias, str):
        variable = field.validation_alias
    expected = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    secret = field is not None and "SecretStr" in repr(field.annotation)
    if error.get("type") == "missing":
        return variable, f"{variable} is required but not set"
    shown = "(value hidden)" if secret else repr(_redact_url(error.get("input")))
    return variable, f"{variable}={shown}: {expected}"


def _find_field(cls: type[BaseSettings], key: str) -> Any:
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if key == name or (isinstance(alias, str) and key.lower() == alias.lower()):
            return field
    return None


def _redact_url(value: Any) -> Any:
    """Hide userinfo (user:password@) in a URL-looking value before it is echoed in an error."""
    if isinstance(value, str) and "@" in value and "://" in value:
        parts = urlsplit(value)
        if parts.password is not None or parts.username is not None:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return parts._replace(netloc=f"***@{host}{port}").geturl()
    return value
