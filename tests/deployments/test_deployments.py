"""The deployments end to end: ``prefect.yaml`` against the catalog, ``prefect deploy --all`` onto a process
work pool, and ``python -m deployments.serve`` running a dry run and an approved execution of the migration
against a real Prefect server and the sandbox TerminusDB, resumed through the API exactly as the UI does."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run

from blocks.terminus_connection import TerminusConnection
from deployments.catalog import DEPLOYMENTS, MIGRATION, WORK_POOL, DeploymentSpec
from sandbox.server import SandboxServer
from tests.deployments.conftest import PREFECT, ROOT, PrefectServer
from tests.deployments.processes import BackgroundProcess, wait_for

RUN_SECONDS = 180
SERVED_ENV = "e2e"
AUDIT_FIELDS = {
    "_created_by",
    "_created_by_username",
    "_created_at",
    "_updated_by",
    "_updated_by_username",
    "_updated_at",
}


def prefect_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return loaded


def run_cli(server: PrefectServer, *args: str, **env: str) -> str:
    done = subprocess.run(
        [PREFECT, *args], cwd=ROOT, env=server.client_env(**env), capture_output=True, text=True, timeout=RUN_SECONDS
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_prefect_yaml_declares_exactly_the_catalog() -> None:
    config = prefect_yaml()
    declared = {entry["name"]: entry for entry in config["deployments"]}
    assert list(declared) == [spec.name for spec in DEPLOYMENTS]
    for spec in DEPLOYMENTS:
        entry = declared[spec.name]
        assert entry["entrypoint"] == spec.entrypoint
        assert entry["parameters"] == dict(spec.parameters)
        # no deployment slot: a paused run would lose it and crash; the migration lease keeps runs apart
        assert "concurrency_limit" not in entry and spec.concurrency_limit is None
        assert entry["tags"] == list(spec.tags)
        assert entry["description"] == spec.description
        assert entry["work_pool"]["name"] == WORK_POOL
        assert spec.load_flow().name == spec.flow_name  # the entrypoint names the flow the catalog means
    assert "pull" not in config, "prefect deploy records the checkout it runs from as the working directory"
    for spec in DEPLOYMENTS:
        declared_schedules = declared[spec.name].get("schedules", [])
        assert declared_schedules == [{"cron": s.cron, "timezone": s.timezone} for s in spec.schedules]


def test_catalog_defaults_are_valid_flow_parameters() -> None:
    for spec in DEPLOYMENTS:
        accepted = spec.load_flow().parameters.properties
        unknown = set(spec.parameters) - set(accepted)
        assert not unknown, f"{spec.name}: default parameters {unknown} are not parameters of the flow"
    assert MIGRATION.default_parameters("staging") == {"env": "staging", "dry_run": True}


def test_deploy_all_creates_both_deployments_without_a_concurrency_limit(prefect_server: PrefectServer) -> None:
    run_cli(prefect_server, "work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    output = run_cli(prefect_server, "--no-prompt", "deploy", "--all")
    with get_client(sync_client=True) as client:
        for spec in DEPLOYMENTS:
            assert spec.full_name in output
            deployment = client.read_deployment_by_name(spec.full_name)
            assert deployment.global_concurrency_limit is None, f"{spec.full_name} has a concurrency limit"
            assert deployment.parameters == dict(spec.parameters)
            assert deployment.entrypoint == spec.entrypoint
            assert deployment.work_pool_name == WORK_POOL
            assert deployment.description == spec.description
            assert sorted(deployment.tags) == sorted(spec.tags)
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ]


def test_block_type_registers_for_the_ui_catalogue(prefect_server: PrefectServer) -> None:
    run_cli(prefect_server, "block", "register", "-m", "blocks.terminus_connection")
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug(TerminusConnection.get_block_type_slug())
    assert block_type.name == "OMS Audit TerminusDB Connection"


def schema_class(sandbox: SandboxServer, name: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{sandbox.url}/api/document/admin/oms",
        params={"graph_type": "schema", "as_list": "true"},
        auth=("admin", "root"),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = [doc for doc in reply.json() if doc.get("@id") == name]
    assert found, f"class {name} is not in the schema of admin/oms"
    return found[0]


def reports(directory: Path) -> list[dict[str, Any]]:
    paths = sorted(directory.glob("migration_report_audit_fields_*.json"))
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


def read_run(flow_run_id: uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def final_state(flow_run_id: uuid.UUID, serving: BackgroundProcess) -> FlowRun:
    def probe() -> FlowRun | None:
        run = read_run(flow_run_id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(f"flow run {flow_run_id} to finish", probe, timeout=RUN_SECONDS, watch=[serving])


def assert_completed(run: FlowRun, serving: BackgroundProcess) -> None:
    assert run.state is not None
    assert run.state.is_completed(), f"run {run.name} ended {run.state!r}\n{serving.report()}"


def registered(spec: DeploymentSpec) -> Any:
    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(f"{spec.flow_name}/{spec.served_name}")
        except Exception:
            return None


def test_served_migration_dry_run_then_approved_from_the_ui(
    prefect_server: PrefectServer, sandbox_demo: SandboxServer, tmp_path: Path
) -> None:
    reports_dir = tmp_path / "reports"
    env = prefect_server.client_env(
        TERMINUS_DB_URL=sandbox_demo.url,
        TERMINUS_DB_NAME="oms",
        OMS_AUDIT_REPORTS_DIR=str(reports_dir),
        OMS_AUDIT_META_DB=f"meta_{uuid.uuid4().hex[:8]}",
        OMS_AUDIT_DLQ_DIR=str(tmp_path / "dlq"),
    )
    command = [str(Path(PREFECT).with_name("python")), "-m", "deployments.serve", "--env", SERVED_ENV]
    serving = BackgroundProcess.start("serve", command, env=env, cwd=tmp_path, log_dir=tmp_path)
    try:
        deployment = wait_for(
            "serve to register the migration deployment",
            lambda: registered(MIGRATION),
            timeout=RUN_SECONDS,
            watch=[serving],
        )
        assert deployment.parameters == {"env": SERVED_ENV, "dry_run": True}
        assert deployment.global_concurrency_limit is None
        name = f"{MIGRATION.flow_name}/{MIGRATION.served_name}"

        dry = run_deployment(name=name, parameters={"triggered_by": "e2e"}, timeout=0, poll_interval=1)
        assert_completed(final_state(dry.id, serving), serving)
        [planned] = reports(reports_dir)
        assert (planned["mode"], planned["status"], planned["env"]) == ("dry_run", "planned", SERVED_ENV)
        assert planned["database"] == "oms" and planned["plan"]["fingerprint"]
        patched = {t["name"] for t in planned["plan"]["types"] if t["action"] == "patch"}
        assert "OntologyResource" in patched
        assert "_created_by" not in schema_class(sandbox_demo, "OntologyResource")  # a dry run changes nothing

        execute = run_deployment(
            name=name,
            parameters={"dry_run": False, "approval_poll_seconds": 1, "triggered_by": "e2e"},
            timeout=0,
            poll_interval=1,
        )

        def paused() -> FlowRun | None:
            run = read_run(execute.id)
            assert run.state is not None
            assert not run.state.is_final(), f"run ended {run.state!r} before pausing\n{serving.report()}"
            return run if run.state.is_paused() else None

        wait_for("the execute run to pause for approval", paused, timeout=RUN_SECONDS, watch=[serving])
        from prefect.input.actions import read_flow_run_input

        plan = read_flow_run_input("approval-plan", flow_run_id=execute.id)
        values = {"decision": "approve", "plan": plan, "approver": "ui-user", "comment": "ok"}
        resume_flow_run(execute.id, run_input=values)
        assert_completed(final_state(execute.id, serving), serving)
    finally:
        serving.stop()

    executed = reports(reports_dir)[-1]
    assert (executed["mode"], executed["status"]) == ("execute", "succeeded"), executed.get("errors")
    assert executed["approval"]["approver"] == "ui-user" and executed["approval"]["decision"] == "approve"
    assert executed["approval"]["verified"] is False
    assert executed["approval"]["via"] == "prefect-ui"
    assert executed["plan"]["fingerprint"] == planned["plan"]["fingerprint"]
    assert set(schema_class(sandbox_demo, "OntologyResource")) >= AUDIT_FIELDS


@pytest.mark.parametrize("env", ["../x", "Production", "prod env"])
def test_serve_refuses_an_invalid_environment_name(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    from deployments.serve import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args(["--env", env])
    assert stopped.value.code == 2
    assert "lowercase letters, digits and dashes" in capsys.readouterr().err
