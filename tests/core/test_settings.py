"""Settings read the guide's variable names; bad values become ConfigErrors that never echo secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import IamSettings, MigrationSettings, MonitoringSettings, TerminusSettings, load_settings

VARIABLES = [
    "TERMINUS_DB_URL",
    "TERMINUS_DB_TEAM",
    "TERMINUS_DB_TOKEN",
    "TERMINUS_DB_NAME",
    "TERMINUS_DB_BRANCH",
    "TERMINUS_DB_USER",
    "TERMINUS_DB_PASSWORD",
    "OMS_AUDIT_META_DB",
    "TERMINUS_DB_TIMEOUT_SECONDS",
    "IAM_SERVICE_URL",
    "IAM_VERIFICATION_ENDPOINT",
    "IAM_JWKS_URL",
    "IAM_ISSUER",
    "IAM_AUDIENCE",
    "IAM_TIMEOUT_SECONDS",
    "IAM_CACHE_TTL_SECONDS",
    "PROMETHEUS_PUSHGATEWAY_URL",
    "DLQ_ALERT_WEBHOOK",
    "OMS_AUDIT_DLQ_DIR",
    "DLQ_ALERT_THRESHOLD",
    "DLQ_AGE_THRESHOLD_SECONDS",
    "OMS_AUDIT_REPORTS_DIR",
    "OMS_AUDIT_SERVICE_ACCOUNT",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_terminus_defaults() -> None:
    settings = load_settings(TerminusSettings)
    assert settings.url == "http://127.0.0.1:6363"
    assert settings.team == "admin"
    assert settings.token is None
    assert settings.database == "oms"
    assert settings.branch == "main"
    assert settings.user == "admin"
    assert settings.password.get_secret_value() == "root"
    assert settings.meta_database == "oms_audit"
    assert settings.timeout_seconds == 30.0


def test_terminus_reads_the_exact_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "TERMINUS_DB_URL": "https://terminus.example.com:6363/",
        "TERMINUS_DB_TEAM": "acme",
        "TERMINUS_DB_TOKEN": "tok-123",
        "TERMINUS_DB_NAME": "ontology",
        "TERMINUS_DB_BRANCH": "dev",
        "TERMINUS_DB_USER": "deployer",
        "TERMINUS_DB_PASSWORD": "pw",
        "OMS_AUDIT_META_DB": "meta",
        "TERMINUS_DB_TIMEOUT_SECONDS": "7.5",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(TerminusSettings)
    assert settings.url == "https://terminus.example.com:6363"  # trailing slash dropped
    assert (settings.team, settings.database, settings.branch) == ("acme", "ontology", "dev")
    assert settings.token is not None
    assert settings.token.get_secret_value() == "tok-123"
    assert (settings.user, settings.password.get_secret_value()) == ("deployer", "pw")
    assert settings.meta_database == "meta"
    assert settings.timeout_seconds == 7.5


def test_overrides_by_field_name_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMINUS_DB_NAME", "from_env")
    settings = load_settings(TerminusSettings, database="from_code", url="http://127.0.0.1:9999")
    assert settings.database == "from_code"
    assert settings.url == "http://127.0.0.1:9999"


def test_secrets_stay_hidden_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMINUS_DB_TOKEN", "very-secret-token")
    monkeypatch.setenv("TERMINUS_DB_PASSWORD", "very-secret-password")
    monkeypatch.setenv("DLQ_ALERT_WEBHOOK", "https://hooks.example.com/T000/secret-path")
    text = repr(load_settings(TerminusSettings)) + str(load_settings(MonitoringSettings))
    for secret in ("very-secret-token", "very-secret-password", "secret-path"):
        assert secret not in text


@pytest.mark.parametrize("bad", ["ftp://example.com", "127.0.0.1:6363", "http://", "not a url"])
def test_bad_url_names_variable_value_and_expectation(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("TERMINUS_DB_URL", bad)
    with pytest.raises(ConfigError) as caught:
        load_settings(TerminusSettings)
    assert caught.value.variable == "TERMINUS_DB_URL"
    assert "TERMINUS_DB_URL" in str(caught.value)
    assert repr(bad) in str(caught.value)
    assert "http://" in str(caught.value)


def test_url_with_credentials_is_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMINUS_DB_URL", "http://admin:hunter2@127.0.0.1:6363")
    with pytest.raises(ConfigError) as caught:
        load_settings(TerminusSettings)
    assert "hunter2" not in str(caught.value)
    assert "TERMINUS_DB_PASSWORD" in str(caught.value)


def test_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMINUS_DB_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError) as caught:
        load_settings(TerminusSettings)
    assert caught.value.variable == "TERMINUS_DB_TIMEOUT_SECONDS"
    assert "'soon'" in str(caught.value)
    assert "number" in str(caught.value)


def test_non_positive_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="TERMINUS_DB_TIMEOUT_SECONDS"):
        load_settings(TerminusSettings, timeout_seconds=0)


def test_invalid_secret_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLQ_ALERT_WEBHOOK", "hooks.example.com/secret-path")
    with pytest.raises(ConfigError) as caught:
        load_settings(MonitoringSettings)
    assert caught.value.variable == "DLQ_ALERT_WEBHOOK"
    assert "secret-path" not in str(caught.value)
    assert "hidden" in str(caught.value)


def test_several_problems_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAM_SERVICE_URL", "iam.local")
    monkeypatch.setenv("IAM_CACHE_TTL_SECONDS", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings(IamSettings)
    assert "IAM_SERVICE_URL" in str(caught.value)
    assert "IAM_CACHE_TTL_SECONDS" in str(caught.value)


def test_iam_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings(IamSettings)
    assert defaults.service_url is None
    assert defaults.verification_endpoint == "/api/v1/verify"
    assert defaults.jwks_url is None
    assert (defaults.timeout_seconds, defaults.cache_ttl_seconds) == (5.0, 0)  # the verdict cache is off by default
    monkeypatch.setenv("IAM_SERVICE_URL", "http://127.0.0.1:8081/")
    monkeypatch.setenv("IAM_JWKS_URL", "http://127.0.0.1:8081/.well-known/jwks.json")
    monkeypatch.setenv("IAM_ISSUER", "https://iam.example")
    monkeypatch.setenv("IAM_AUDIENCE", "oms")
    settings = load_settings(IamSettings)
    assert settings.service_url == "http://127.0.0.1:8081"
    assert settings.jwks_url == "http://127.0.0.1:8081/.well-known/jwks.json"
    assert (settings.issuer, settings.audience) == ("https://iam.example", "oms")


def test_iam_endpoint_must_be_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAM_VERIFICATION_ENDPOINT", "api/v1/verify")
    with pytest.raises(ConfigError, match="IAM_VERIFICATION_ENDPOINT"):
        load_settings(IamSettings)


def test_monitoring_and_migration_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    defaults = load_settings(MonitoringSettings)
    assert defaults.pushgateway_url is None
    assert defaults.dlq_alert_webhook is None
    assert defaults.dlq_dir == Path("/tmp")
    assert (defaults.dlq_alert_threshold, defaults.dlq_age_threshold_seconds) == (100, 3600)
    assert load_settings(MigrationSettings).reports_dir == Path(".")
    assert load_settings(MigrationSettings).service_account == "svc_deployment"
    monkeypatch.setenv("PROMETHEUS_PUSHGATEWAY_URL", "http://127.0.0.1:9091")
    monkeypatch.setenv("OMS_AUDIT_DLQ_DIR", str(tmp_path))
    monkeypatch.setenv("DLQ_ALERT_THRESHOLD", "5")
    monkeypatch.setenv("OMS_AUDIT_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("OMS_AUDIT_SERVICE_ACCOUNT", "svc_other")
    monitoring = load_settings(MonitoringSettings)
    assert monitoring.pushgateway_url == "http://127.0.0.1:9091"
    assert monitoring.dlq_dir == tmp_path
    assert monitoring.dlq_alert_threshold == 5
    migration = load_settings(MigrationSettings)
    assert migration.reports_dir == tmp_path / "reports"
    assert migration.service_account == "svc_other"


def test_lease_ttl_and_renewal_are_settings_and_renewal_must_come_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMS_AUDIT_LEASE_TTL_SECONDS", "120")
    monkeypatch.setenv("OMS_AUDIT_LEASE_RENEW_SECONDS", "30")
    settings = load_settings(MigrationSettings)
    assert (settings.lease_ttl_seconds, settings.lease_renew_seconds) == (120, 30)
    monkeypatch.setenv("OMS_AUDIT_LEASE_RENEW_SECONDS", "120")
    with pytest.raises(ConfigError, match="OMS_AUDIT_LEASE_RENEW_SECONDS") as caught:
        load_settings(MigrationSettings)
    assert "?" not in str(caught.value)
