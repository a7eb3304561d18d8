"""Interrupts, crashes and flaky servers leave books that are true and a state the next run recovers from.

Driven as a user meets them: ``oms-audit`` in its own process group, stopped with real signals (SIGINT =
Ctrl-C, SIGKILL = a crash) while a patch is in flight (the sandbox's fault injection holds the call), then
run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client

from core.metadata_db import metadata_gateway
from core.migration_lease import read_lease
from core.run_history import get_run, list_runs
from core.terminus import Commit

from .cli_process import cli_env, run_cli, start_cli
from .conftest import Workspace
from .helpers import document_classes, missing_audit_fields, read_report
from .runner_fixtures import WarmRunner

EXECUTE = ("migrate", "--env", "test", "--execute", "--yes")


def wait_for_report(
    directory: Path, ready: Callable[[dict[str, Any]], bool], process: subprocess.Popen[str]
) -> dict[str, Any]:
    """The run's report once ``ready(report)`` holds (polled; the process must still be running)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended early: {process.communicate()[1][-3000:]}"
        for path in directory.glob("migration_report_audit_fields_*.json"):
            try:
                report = read_report(path)
            except (OSError, json.JSONDecodeError):
                continue
            if ready(report):
                return report
        time.sleep(0.2)
    raise AssertionError("the run never got there")


def states(report: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["state"] for t in (report.get("plan") or {}).get("types", []) if t["action"] == "patch"}


def patch_commits(space: Workspace) -> list[Commit]:
    with space.gateway() as gateway:
        return [c for c in gateway.log() if c.message.startswith("oms-audit: add audit fields")]


def patched_by(commits: list[Commit], run_id: str) -> set[str]:
    return {op["class"] for c in commits if run_id in c.message for op in c.migration or []}


def assert_fully_patched_once(space: Workspace) -> None:
    with space.gateway() as gateway:
        schema = gateway.schema()
    assert all(missing_audit_fields(schema, name) == [] for name in document_classes(schema))
    created = [(op["class"], op["property"]) for c in patch_commits(space) for op in c.migration or []]
    assert len(created) == len(set(created)), "no property may be created twice"
    assert len(patch_commits(space)) == len({cls for cls, _ in created}), "one commit per type"


def only_new_report(directory: Path, before: set[Path]) -> dict[str, Any]:
    (path,) = set(directory.glob("migration_report_audit_fields_*.json")) - before
    return read_report(path)


def hold_migration_calls(sandbox_url: str, database: str, *, after: int, seconds: float) -> None:
    """The next migration call after ``after`` of them (the plan's timing dry run is the first) waits."""
    rule = {"method": "POST", "path_prefix": f"/api/migration/admin/{database}", "after": after, "times": 1}
    reply = httpx.post(f"{sandbox_url}/_sandbox/faults", json=rule | {"action": "delay", "seconds": seconds})
    assert reply.status_code == 200, reply.text


def clear_faults(sandbox_url: str) -> None:
    httpx.delete(f"{sandbox_url}/_sandbox/faults")


@pytest.mark.parametrize("served_by", ["its own process", "a warm runner"])
def test_ctrl_c_while_patching_stops_cleanly_and_a_rerun_finishes_and_validates(
    workspace: Workspace, served_by: str, request: pytest.FixtureRequest
) -> None:
    env = None
    if served_by == "a warm runner":
        runner: WarmRunner = request.getfixturevalue("warm_runner")
        runner.start()
        env = runner.env
    hold_migration_calls(workspace.url, workspace.database, after=1, seconds=6)  # the first patch is in flight
    try:
        process = start_cli(*EXECUTE, env=env)
        report = wait_for_report(workspace.reports_dir, lambda r: "applying" in states(r).values(), process)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=180)
    finally:
        clear_faults(workspace.url)
    assert process.returncode == 3, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted (Ctrl-C at the terminal)" in err and "Run the same command again" in err
    if env is not None:
        assert len(runner.served()) == 1, "the runner's child ran the command"

    report = read_report(next(workspace.reports_dir.glob("migration_report_audit_fields_*.json")))
    commits = patch_commits(workspace)
    applied = patched_by(commits, report["run_id"])
    assert report["status"] == "cancelled" and applied, "the patch in flight finished before the run stopped"
    assert states(report) == {name: "applied" if name in applied else "pending" for name in states(report)}
    assert "pending" in states(report).values(), "the run stopped after the type in progress"
    assert report["head_commit_after"] == commits[0].id
    with metadata_gateway(workspace.settings()) as meta:
        record = get_run(meta, report["run_id"])
        assert read_lease(meta, workspace.database) is None, "the lease is released"
    assert record is not None and record.status == "cancelled" and record.type_states == states(report)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(report["flow_run_id"]).state
    assert state is not None and state.is_cancelled(), state

    before = set(workspace.reports_dir.glob("migration_report_audit_fields_*.json"))
    again = workspace.migrate(dry_run=False)
    assert again.state.is_completed(), again.state
    rerun = only_new_report(workspace.reports_dir, before)
    assert rerun["validation"] and rerun["validation"]["ok"] is True
    assert_fully_patched_once(workspace)


def test_a_killed_run_is_taken_over_at_once_reconciled_and_its_successor_validates(workspace: Workspace) -> None:
    # the first type is patched, the second is held in flight for longer than this test lasts
    hold_migration_calls(workspace.url, workspace.database, after=2, seconds=240)
    env = cli_env(TERMINUS_DB_TIMEOUT_SECONDS="600")
    try:
        killed = start_cli(*EXECUTE, env=env)
        report = wait_for_report(
            workspace.reports_dir, lambda r: list(states(r).values()) == ["applied", "applying"], killed
        )
        # a second run meanwhile is told who holds the lease, before it times or asks anything
        before = set(workspace.reports_dir.glob("migration_report_audit_fields_*.json"))
        racing = workspace.migrate(dry_run=False)
        assert racing.state.is_failed() and racing.answered is None
        error = only_new_report(workspace.reports_dir, before)["errors"][-1]
        assert error["type"] == "LeaseHeld" and error["category"] == "stopped"
        assert f"pid {killed.pid} on" in error["message"] and "holds the lease" in error["message"]
        os.killpg(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)
    finally:
        clear_faults(workspace.url)
    with metadata_gateway(workspace.settings()) as meta:
        lease = read_lease(meta, workspace.database)
        record = get_run(meta, report["run_id"])
    assert lease is not None and lease.run_id == report["run_id"], "a killed run cannot release its lease"
    assert record is not None and record.status == "running"

    before = set(workspace.reports_dir.glob("migration_report_audit_fields_*.json"))
    successor = workspace.migrate(dry_run=False)  # same host, the holder's process is gone: no five-minute wait
    assert successor.state.is_completed(), successor.state
    rerun = only_new_report(workspace.reports_dir, before)
    assert any(report["run_id"] in warning and "crashed" in warning for warning in rerun["warnings"]), rerun
    assert rerun["validation"] and rerun["validation"]["ok"] is True
    with metadata_gateway(workspace.settings()) as meta:
        record = get_run(meta, report["run_id"])
        runs = list_runs(meta, database=workspace.database)
        assert read_lease(meta, workspace.database) is None
    applied = patched_by(patch_commits(workspace), report["run_id"])
    assert record is not None and record.status == "crashed"
    assert record.type_states == {name: "applied" if name in applied else "pending" for name in states(report)}
    assert [run.status for run in runs if run.run_id != report["run_id"]].count("stopped") == 1, "the racing run"
    assert_fully_patched_once(workspace)


def test_a_dry_run_whose_plan_is_overtaken_by_a_patching_run_names_the_lease_holder(workspace: Workspace) -> None:
    """Today: the dry run's timing call meets a type the other run has just patched and fails with a raw
    ``api:SchemaOperationFailed … retrying will not help`` (exit 1)."""
    # The executing run's second patch is held; the dry run's timing call (the next migration call) is held
    # longer, so the second patch lands between the dry run's analysis and its timing call.
    hold_migration_calls(workspace.url, workspace.database, after=2, seconds=40)
    hold_migration_calls(workspace.url, workspace.database, after=2, seconds=50)
    env = cli_env(TERMINUS_DB_TIMEOUT_SECONDS="120")
    try:
        patching = start_cli(*EXECUTE, env=env)
        report = wait_for_report(
            workspace.reports_dir, lambda r: list(states(r).values()) == ["applied", "applying"], patching
        )
        before = set(workspace.reports_dir.glob("migration_report_audit_fields_*.json"))
        dry = run_cli("migrate", "--env", "test", "--dry-run", env=env, timeout=240)
        _, patching_err = patching.communicate(timeout=240)
    finally:
        clear_faults(workspace.url)
    assert patching.returncode == 0, patching_err[-3000:]
    assert dry.returncode == 3, dry.stderr[-3000:]
    assert "Traceback" not in dry.stderr and "retrying will not help" not in dry.stderr
    # by the time the dry run's call came back the other run had finished: the branch log names it
    assert f"changed by the migration run {report['run_id']} while this run was making its plan" in " ".join(
        dry.stderr.split()
    )
    raced = only_new_report(workspace.reports_dir, before)
    assert raced["mode"] == "dry_run" and raced["errors"][-1]["type"] == "PlanRaced"
    assert raced["errors"][-1]["category"] == "stopped" and report["run_id"] in raced["errors"][-1]["message"]
    assert_fully_patched_once(workspace)


def test_one_503_on_the_metadata_database_is_retried(workspace: Workspace, faults: Any) -> None:
    meta = workspace.meta_database
    faults(method="GET", path_prefix=f"/api/document/admin/{meta}", times=1, action="status", status=503)
    faults(
        method="POST",
        path_prefix=f"/api/document/admin/{meta}/local/branch/migrations",
        times=1,
        action="status",
        status=503,
    )
    outcome = workspace.migrate(dry_run=False)
    assert outcome.state.is_completed(), outcome.state
    assert_fully_patched_once(workspace)


def test_a_hung_server_costs_a_bounded_wait_that_the_message_states(
    workspace: Workspace, faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blocks.environment import resolve_terminus

    monkeypatch.setenv("TERMINUS_DB_TIMEOUT_SECONDS", "1")
    resolve_terminus.cache_clear()
    faults(method="GET", path_prefix=f"/api/log/admin/{workspace.database}", action="delay", seconds=3, times=20)
    outcome = workspace.migrate(dry_run=True)
    assert outcome.state.is_failed()
    report = read_report(next(workspace.reports_dir.glob("migration_report_audit_fields_*.json")))
    message = report["errors"][-1]["message"]
    assert "did not answer within 1s" in message and "gave up after 2 attempts over" in message, message
    assert f"the target database '{workspace.database}'" in message and "re-run resumes" in message
