"""``oms-audit dlq …`` as a user runs it: a subprocess, exit codes, stdout and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect.settings import PREFECT_API_URL

from tests.permissions import bound_by_permissions

from .dlq_fixtures import SweepEnv, backend, dlq_lines, make_events, pushgateway, sweep_env, webhook

__all__ = ["backend", "pushgateway", "sweep_env", "webhook"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]


def oms_audit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", _ENTRY, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


_ENTRY = "import sys; from cli.main import main; sys.exit(main(sys.argv[1:]))"


def test_stats_json_and_table(sweep_env: SweepEnv) -> None:
    sweep_env.dlq.append(make_events(3))
    sweep_env.dlq.append(make_events(1), dlq_type="poison")
    result = oms_audit("dlq", "stats", "--dir", str(sweep_env.dir), "--json")
    assert result.returncode == 0, result.stderr
    types = json.loads(result.stdout)["types"]
    assert (types["fallback"]["count"], types["poison"]["count"], types["corrupt"]["count"]) == (3, 1, 0)
    assert types["fallback"]["oldest_enqueued_at"] is not None
    table = oms_audit("dlq", "stats", "--dir", str(sweep_env.dir))
    assert table.returncode == 0 and "fallback" in table.stdout and "oldest age" in table.stdout


def test_stats_on_a_missing_folder_exits_2_saying_what_to_do(tmp_path: Path) -> None:
    result = oms_audit("dlq", "stats", "--dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "OMS_AUDIT_DLQ_DIR" in result.stderr


def test_sweep_shows_progress_and_a_summary_then_patterns_and_redrive(sweep_env: SweepEnv) -> None:
    events = make_events(40)
    sweep_env.dlq.append(events)
    sweep_env.backend.reject = {events[0].event_id: "refused"}

    result = oms_audit("dlq", "sweep", "--env", "test", "--dir", str(sweep_env.dir), "--max-attempts", "2")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "sweeping" in result.stderr and "replayed 39" in result.stderr  # the progress bar
    assert "DLQ sweep: Completed" in result.stdout and "metrics: pushed" in result.stdout
    assert len(sweep_env.backend.events) == 39
    assert sweep_env.pushgateway.samples("oms_audit_dlq_sweep_last_success_timestamp_seconds")

    patterns = oms_audit("dlq", "patterns", "--dir", str(sweep_env.dir), "--json")
    assert patterns.returncode == 0, patterns.stderr
    (row,) = json.loads(patterns.stdout)["patterns"]
    assert (row["error_type"], row["events"]) == ("SinkRejected", 1)

    assert (
        oms_audit("dlq", "sweep", "--env", "test", "--dir", str(sweep_env.dir), "--max-attempts", "2").returncode == 0
    )
    assert [line["event_id"] for line in dlq_lines(sweep_env.dlq, "poison")] == [events[0].event_id]
    redriven = oms_audit("dlq", "redrive", "--from", "poison", "--dir", str(sweep_env.dir))
    assert redriven.returncode == 0 and "Moved 1 line(s)" in redriven.stdout
    assert dlq_lines(sweep_env.dlq, "poison") == [] and len(dlq_lines(sweep_env.dlq, "fallback")) == 1


def test_sweep_with_the_sink_down_exits_1_naming_the_state(sweep_env: SweepEnv) -> None:
    sweep_env.dlq.append(make_events(2))
    sweep_env.backend.fail_with = 503
    result = oms_audit("dlq", "sweep", "--env", "test", "--dir", str(sweep_env.dir))
    assert result.returncode == 1
    assert "AuditSinkUnavailable" in result.stderr and "stay in the dead-letter queue" in result.stderr
    assert len(dlq_lines(sweep_env.dlq, "fallback")) == 2


def test_sweep_of_a_folder_it_cannot_write_exits_2_and_keeps_every_line(sweep_env: SweepEnv) -> None:
    sweep_env.dlq.append(make_events(3))
    before = sorted(path.name for path in sweep_env.dir.iterdir())
    sweep_env.dir.chmod(0o555)
    try:
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "200"}
        result = subprocess.run(
            bound_by_permissions(
                [sys.executable, "-c", _ENTRY, "dlq", "sweep", "--env", "test", "--dir", str(sweep_env.dir)]
            ),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        sweep_env.dir.chmod(0o755)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "not writable" in result.stderr and "OMS_AUDIT_DLQ_DIR" in result.stderr
    assert sorted(path.name for path in sweep_env.dir.iterdir()) == before
    assert len(dlq_lines(sweep_env.dlq, "fallback")) == 3
