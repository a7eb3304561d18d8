"""The migration flow's configuration in operation: resolved once per run, never a silent default, and a
plan that survives a failed timing call."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from blocks.environment import resolve_terminus
from core.settings import TerminusSettings

from .conftest import Workspace
from .helpers import only_report


def test_the_environment_is_resolved_once_per_run(workspace: Workspace) -> None:
    """Today configuration_of, resolve_target and every open_gateway each resolved ``env`` again."""
    resolve_terminus.cache_clear()
    assert workspace.migrate(dry_run=True).state.is_completed()
    info = resolve_terminus.cache_info()
    assert info.misses + info.hits == 1, f"env resolved {info.misses + info.hits} times in one run"
    report = only_report(workspace.reports_dir)
    assert report["terminus_url"] == workspace.url and report["config_source"] == "environment"


def test_the_target_carries_no_secret() -> None:
    from tasks.terminus_target import Target

    secret_fields = {name for name, field in TerminusSettings.model_fields.items() if "SecretStr" in repr(field)}
    assert secret_fields and not secret_fields & set(Target.model_fields)


def test_the_metadata_database_is_refused_as_a_target(workspace: Workspace) -> None:
    outcome = workspace.migrate(dry_run=True, database=workspace.meta_database)
    assert outcome.state.is_failed()
    [error] = only_report(workspace.reports_dir)["errors"]
    assert error["type"] == "ConfigError" and "OMS_AUDIT_META_DB" in error["message"]


def test_an_environment_nothing_configures_fails_the_run(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment run of ``env=production`` with neither a block nor TERMINUS_DB_URL: refused, not local."""
    monkeypatch.delenv("TERMINUS_DB_URL")
    resolve_terminus.cache_clear()
    outcome = workspace.migrate(dry_run=True, env="production")
    assert outcome.state.is_failed()
    [error] = only_report(workspace.reports_dir)["errors"]
    assert error["type"] == "ConfigError"
    assert "block named 'production'" in error["message"] and "TERMINUS_DB_URL" in error["message"]


def test_a_server_error_on_the_timing_call_leaves_the_estimate_unknown(
    workspace: Workspace, faults: Callable[..., dict]
) -> None:
    """Today the 500 failed the whole dry run (after three retries)."""
    faults(method="POST", path_prefix="/api/migration/", times=4, action="status", status=500)
    outcome = workspace.migrate(dry_run=True)
    assert outcome.state.is_completed(), outcome.state
    report = only_report(workspace.reports_dir)
    assert report["status"] == "planned" and report["plan"]["fingerprint"]
    assert report["plan"]["estimate_basis"].startswith("unknown (the timing dry-run call failed")
    [warning] = report["warnings"]
    assert warning.startswith("The duration estimate is unknown") and "500" in warning
