"""Blocks as a user meets them: ``prefect block register -m blocks``, ``oms-audit blocks create --env`` from
the guide's environment variables, ``oms-audit blocks show`` naming each setting's source (never a secret),
and a clear error for an environment nothing configures. Against the package's real Prefect server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client

from blocks import DlqConfig, IamConfig, PushgatewayConfig, TerminusConnection
from deployments.catalog import DEPLOYMENTS
from tests.deployments.conftest import PREFECT, ROOT, PrefectServer

OMS_AUDIT = str(Path(sys.executable).with_name("oms-audit"))
SECRET_TOKEN = "tok-3f9a-very-secret"
SECRET_HOOK = "http://127.0.0.1:9/hooks/s3cr3t-path"


def run(server: PrefectServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=ROOT, env=server.client_env(**env), capture_output=True, text=True, timeout=180
    )


def test_register_create_show_and_load_by_env(prefect_server: PrefectServer, tmp_path: Path) -> None:
    registered = run(prefect_server, PREFECT, "block", "register", "-m", "blocks")
    assert registered.returncode == 0, registered.stderr
    with get_client(sync_client=True) as client:
        for block in (TerminusConnection, IamConfig, PushgatewayConfig, DlqConfig):
            assert client.read_block_type_by_slug(block.get_block_type_slug()).name == block.get_block_type_name()

    guide_env = {
        "TERMINUS_DB_URL": "http://127.0.0.1:6399",
        "TERMINUS_DB_TEAM": "acme",
        "TERMINUS_DB_TOKEN": SECRET_TOKEN,
        "TERMINUS_DB_TOKEN_SCHEME": "Token",
        "IAM_SERVICE_URL": "http://127.0.0.1:6398",
        "PROMETHEUS_PUSHGATEWAY_URL": "http://127.0.0.1:6397",
        "DLQ_ALERT_WEBHOOK": SECRET_HOOK,
        "OMS_AUDIT_DLQ_DIR": str(tmp_path / "dlq"),
    }
    created = run(prefect_server, OMS_AUDIT, "blocks", "create", "--env", "staging", **guide_env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "created oms-audit-terminusdb-connection/staging" in created.stdout
    again = run(prefect_server, OMS_AUDIT, "blocks", "create", "--env", "staging", **guide_env)
    assert again.returncode == 2 and "--overwrite" in again.stderr

    # a shell with none of the variables: everything comes from the blocks
    shown = run(prefect_server, OMS_AUDIT, "blocks", "show", "--env", "staging", "--json", COLUMNS="250")
    assert shown.returncode == 0, shown.stderr
    rows: list[dict[str, Any]] = json.loads(shown.stdout)
    by_name = {(row["group"], row["name"]): row for row in rows}
    assert by_name[("Terminus", "url")] == by_name[("Terminus", "url")] | {
        "value": "http://127.0.0.1:6399",
        "source": "block oms-audit-terminusdb-connection/staging",
    }
    assert by_name[("Terminus", "token")]["value"] == "(secret, set)"
    assert by_name[("Terminus", "token_scheme")]["value"] == "Token"  # hosted TerminusDB, kept in the block
    assert by_name[("Iam", "service_url")]["source"] == "block oms-audit-iam/staging"
    assert by_name[("Monitoring", "pushgateway_url")]["source"] == "block oms-audit-pushgateway/staging"
    assert by_name[("Dlq", "dlq_dir")]["value"] == str(tmp_path / "dlq")
    assert by_name[("Alerts", "webhook")]["source"] == "block custom-webhook/staging"
    assert SECRET_TOKEN not in shown.stdout and "s3cr3t" not in shown.stdout

    # an environment variable fills what no block sets, and says so
    mixed = run(prefect_server, OMS_AUDIT, "blocks", "show", "--env", "staging", "--json", OMS_AUDIT_FOUR_EYES="1")
    rows = json.loads(mixed.stdout)
    [four_eyes] = [row for row in rows if row["name"] == "four_eyes"]
    assert four_eyes == four_eyes | {"value": "True", "source": "environment (OMS_AUDIT_FOUR_EYES)"}

    # loaded by --env in code, the way every job does
    loaded = TerminusConnection.load("staging")
    assert isinstance(loaded, TerminusConnection) and loaded.team == "acme"


def test_an_environment_nothing_configures_is_a_clear_error(prefect_server: PrefectServer) -> None:
    shown = run(prefect_server, OMS_AUDIT, "blocks", "show", "--env", "nowhere", COLUMNS="250")
    assert shown.returncode == 2
    assert "Nothing configures TerminusDB for environment 'nowhere'" in shown.stderr
    assert "oms-audit blocks create --env nowhere" in shown.stderr
    created = run(prefect_server, OMS_AUDIT, "blocks", "create", "--env", "nowhere")
    assert created.returncode == 2 and "TERMINUS_DB_URL is not set" in created.stderr


def test_an_environment_nothing_configures_is_refused_before_prefect_is_imported(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """With a running server configured, whether the block exists is one GET: the guide's command exits 2
    without importing Prefect (which used to cost seconds before the same message)."""
    guide = [sys.executable, "-X", "importtime", "migrations/production_audit_fields_migration.py"]
    done = run(prefect_server, *guide, "--env", "nowhere", "--dry-run", OMS_AUDIT_REPORTS_DIR=str(tmp_path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Nothing configures TerminusDB for environment 'nowhere'" in done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "cli.prefect_api" in imported, "the importtime listing is read"
    assert "prefect" not in imported
    assert not list(tmp_path.iterdir()), "no report: nothing ran"


def test_docker_variant_declares_the_same_deployments() -> None:
    config = yaml.safe_load((ROOT / "prefect.docker.yaml").read_text(encoding="utf-8"))
    declared = {entry["name"]: entry for entry in config["deployments"]}
    assert list(declared) == [spec.name for spec in DEPLOYMENTS]
    for spec in DEPLOYMENTS:
        entry = declared[spec.name]
        assert (entry["entrypoint"], entry["parameters"]) == (spec.entrypoint, dict(spec.parameters))
        assert entry.get("schedules", []) == [{"cron": s.cron, "timezone": s.timezone} for s in spec.schedules]
        assert entry["work_pool"]["job_variables"]["image"]


def test_blocks_taken_whole_name_every_field_and_map_onto_their_settings() -> None:
    """``FIELDS`` is the one list ``to_settings``/``from_settings`` use: a field added to the block but not to
    it would silently never reach the settings."""
    from core.settings import IamSettings, TerminusSettings

    for block_cls, settings_cls in ((TerminusConnection, TerminusSettings), (IamConfig, IamSettings)):
        assert set(block_cls.FIELDS) == set(block_cls.model_fields), block_cls.__name__
        assert set(block_cls.FIELDS) <= set(settings_cls.model_fields), block_cls.__name__
    settings = TerminusSettings(url="https://example.invalid", database="db1", token="t0k", token_scheme="Token")
    assert TerminusConnection.from_settings(settings).to_settings() == settings
