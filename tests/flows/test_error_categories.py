"""Errors are classified once (core.errors): the exit code, the history status and the retries all agree."""

from __future__ import annotations

from typing import Any

from cli.outcome import EXIT_STOPPED, exit_code
from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.migration_lease import acquire_lease
from core.run_history import get_run

from .cli_process import cli_env, run_cli
from .conftest import Workspace
from .helpers import only_report, task_runs_of

UNHANDLED_500 = {
    "@type": "api:UnhandledErrorResponse",
    "api:status": "api:server_error",
    "api:message": "An internal server error occurred. Please contact the administrator.",
    "api:error": {"@type": "api:InternalServerError"},
}


def test_a_held_lease_is_recorded_as_stopped_as_the_exit_code_says(workspace: Workspace) -> None:
    settings = workspace.settings()
    with metadata_gateway(settings) as meta:
        ensure_metadata_db(meta, settings)
        acquire_lease(meta, database=workspace.database, owner="carol", run_id="other-run", ttl_seconds=600)
    outcome = workspace.migrate(dry_run=False)
    assert exit_code(outcome.state) == EXIT_STOPPED
    report = only_report(workspace.reports_dir)
    assert report["errors"][-1]["category"] == "stopped"
    with metadata_gateway(settings) as meta:
        record = get_run(meta, report["run_id"])
    assert record is not None and record.status == "stopped", record


def test_history_with_wrong_credentials_exits_2(workspace: Workspace) -> None:
    done = run_cli("history", "--env", "test", env=cli_env(TERMINUS_DB_TOKEN="not-a-valid-token"))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "TERMINUS_DB_TOKEN" in done.stderr and "not-a-valid-token" not in done.stderr + done.stdout


def test_terminusdbs_own_500_is_not_retried(workspace: Workspace, faults: Any) -> None:
    # the plan's timing dry run goes through; the first patch gets TerminusDB's own (deterministic) 500
    faults(
        method="POST", path_prefix="/api/migration/", after=1, times=1, action="status", status=500, body=UNHANDLED_500
    )
    outcome = workspace.migrate(dry_run=False)
    assert outcome.state.is_failed()
    failed = [run for run in task_runs_of(outcome.flow_run_id) if run.state and run.state.is_failed()]
    assert [run.run_count for run in failed] == [1], "a deterministic 500 is not worth a retry"
    assert only_report(workspace.reports_dir)["errors"][-1]["category"] == "failed"
