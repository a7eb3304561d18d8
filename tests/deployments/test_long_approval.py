"""An approval that takes longer than Prefect's lease renewal window, on the served deployment.

A paused run must survive as long as its approver needs (the default approval timeout is 24 h). Prefect's
deployment concurrency limit holds a lease that the server revokes when the run leaves Running (Paused
included) while the paused process keeps renewing it: about four minutes into the pause the renewal gets
410 Gone and the run crashes. So the deployments carry no concurrency limit, and exclusivity is the
migration lease's job: a second run of the same database during the pause is refused, naming the holder.

Slow (over six minutes); ``pytest -m "not slow"`` leaves it out, the default run includes it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run

from deployments.catalog import MIGRATION
from sandbox.server import SandboxServer
from tests.deployments.conftest import PREFECT, PrefectServer
from tests.deployments.processes import BackgroundProcess, wait_for
from tests.deployments.test_deployments import (
    AUDIT_FIELDS,
    RUN_SECONDS,
    SERVED_ENV,
    assert_completed,
    final_state,
    read_run,
    registered,
    reports,
    schema_class,
)

PAUSE_SECONDS = 390
"""Longer than Prefect's lease renewal window: the lease lives 300 s and is renewed at 3/4 of that."""


def report_of(directory: Path, flow_run_id: uuid.UUID) -> dict[str, object]:
    [found] = [report for report in reports(directory) if report["run_id"] == str(flow_run_id)]
    return found


@pytest.mark.slow
@pytest.mark.timeout(PAUSE_SECONDS + 4 * RUN_SECONDS)
def test_served_migration_paused_longer_than_the_lease_window_then_approved(
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
    serving = BackgroundProcess.start("serve-long", command, env=env, cwd=tmp_path, log_dir=tmp_path)
    try:
        wait_for("serve to register the migration deployment", lambda: registered(MIGRATION), timeout=RUN_SECONDS)
        name = f"{MIGRATION.flow_name}/{MIGRATION.served_name}"
        execute = {"dry_run": False, "approval_poll_seconds": 1}
        first = run_deployment(name=name, parameters={**execute, "triggered_by": "first"}, timeout=0, poll_interval=1)

        def still_waiting() -> FlowRun | None:
            run = read_run(first.id)
            assert run.state is not None
            assert not run.state.is_final(), f"the paused run ended {run.state!r}\n{serving.report()}"
            return run if run.state.is_paused() else None

        wait_for("the first run to pause for approval", still_waiting, timeout=RUN_SECONDS, watch=[serving])
        paused_at = time.monotonic()

        second = run_deployment(name=name, parameters={**execute, "triggered_by": "second"}, timeout=0, poll_interval=1)
        refused = final_state(second.id, serving)
        assert refused.state is not None and refused.state.is_failed(), f"second run ended {refused.state!r}"
        second_report = report_of(reports_dir, second.id)
        [error] = second_report["errors"]  # type: ignore[misc]
        assert error["type"] == "LeaseHeld", error
        assert f"first (run {first.id}" in error["message"], error["message"]

        while time.monotonic() - paused_at < PAUSE_SECONDS:
            still_waiting()
            time.sleep(10)
        assert still_waiting() is not None, "the run is no longer paused"
        assert "_created_by" not in schema_class(sandbox_demo, "OntologyResource")

        from prefect.input.actions import read_flow_run_input

        plan = read_flow_run_input("approval-plan", flow_run_id=first.id)  # the short fingerprint shown
        resume_flow_run(first.id, run_input={"decision": "approve", "plan": plan, "approver": "slow-approver"})
        assert_completed(final_state(first.id, serving), serving)
    finally:
        serving.stop()

    executed = report_of(reports_dir, first.id)
    assert executed["status"] == "succeeded", executed.get("errors")
    assert executed["approval"]["approver"] == "slow-approver"  # type: ignore[index]
    assert set(schema_class(sandbox_demo, "OntologyResource")) >= AUDIT_FIELDS
