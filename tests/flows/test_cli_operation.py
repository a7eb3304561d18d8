"""The CLI in real operation, as a separate process: Ctrl-C at the prompt, a prompt that outlives the approval
timeout, answers piped in, and configuration errors that must stop it before Prefect starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from core.metadata_db import metadata_gateway
from core.migration_lease import read_lease

from .conftest import Workspace
from .helpers import document_classes, missing_audit_fields, only_report

ROOT = Path(__file__).resolve().parents[2]
OMS_AUDIT = str(Path(sys.executable).with_name("oms-audit"))
GUIDE_SCRIPT = [sys.executable, "migrations/production_audit_fields_migration.py"]
RUN_SECONDS = 240


class Cli:
    """``oms-audit`` in its own process group, its output collected as it comes (prompts end without newline)."""

    def __init__(self, args: list[str], env: dict[str, str], command: list[str] | None = None) -> None:
        self.popen = subprocess.Popen(
            [*(command or [OMS_AUDIT]), *args],
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._out, self._err = bytearray(), bytearray()
        self._readers = [
            threading.Thread(target=self._drain, args=(self.popen.stdout, self._out), daemon=True),
            threading.Thread(target=self._drain, args=(self.popen.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: object, into: bytearray) -> None:
        fd = stream.fileno()  # type: ignore[attr-defined]
        while chunk := os.read(fd, 4096):
            into.extend(chunk)

    @property
    def out(self) -> str:
        return self._out.decode(errors="replace")

    @property
    def err(self) -> str:
        return self._err.decode(errors="replace")

    def wait_for_output(self, text: str, timeout: float = RUN_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"never printed {text!r}\nstdout:\n{self.out[-3000:]}\nstderr:\n{self.err[-3000:]}")
            time.sleep(0.2)

    def send(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text.encode())
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.close()

    def wait(self, timeout: float = RUN_SECONDS) -> int:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"still running after {timeout:.0f} s\nstdout:\n{self.out[-3000:]}\nstderr:\n{self.err[-3000:]}"
            )
        for reader in self._readers:
            reader.join(10)
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


def harness_env() -> dict[str, str]:
    """The test's environment (the workspace's TerminusDB) with the test run's Prefect API."""
    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def no_prefect_env(home: Path) -> dict[str, str]:
    """No Prefect API configured: the CLI starts its own, in ``home``, stopped when the command ends."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    return {**env, "PREFECT_HOME": str(home), "OMS_AUDIT_LOCAL_API_IDLE_SECONDS": "0"}


@pytest.mark.timeout(3 * RUN_SECONDS)  # its own temporary API starts first; both waits are bounded
def test_ctrl_c_at_the_prompt_is_a_clean_rejection_that_frees_the_lease(workspace: Workspace, tmp_path: Path) -> None:
    """Today the terminal's SIGINT also killed Prefect's temporary API: a ConnectError traceback or a hang."""
    run = Cli(["migrate", "--env", "test", "--execute"], no_prefect_env(tmp_path / "prefect"))
    run.wait_for_output("Apply this plan?")
    os.killpg(run.popen.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    code = run.wait()
    assert code == 3, f"stdout:\n{run.out[-3000:]}\nstderr:\n{run.err[-3000:]}"
    assert "Traceback" not in run.err
    report = only_report(workspace.reports_dir)
    assert report["status"] == "rejected"
    assert report["approval"]["decision"] == "reject"
    assert "interrupted at the terminal" in report["approval"]["comment"]
    with metadata_gateway(workspace.settings()) as gateway:
        assert read_lease(gateway, workspace.database) is None, "the interrupted run still holds the lease"
    with workspace.gateway() as gateway:
        schema = gateway.schema()
    assert all(missing_audit_fields(schema, name) for name in document_classes(schema))  # nothing changed


def test_the_prompt_ends_when_the_approval_times_out(workspace: Workspace) -> None:
    """Today the prompt waited on; an answer after the timeout then failed with a NotPausedError traceback."""
    run = Cli(["migrate", "--env", "test", "--execute", "--approval-timeout", "5"], harness_env())
    run.wait_for_output("Apply this plan?")
    try:
        run.popen.wait(25)
    except subprocess.TimeoutExpired:
        run.send("y\n")  # the approver comes back after 25 s
    code = run.wait()
    assert code == 1, f"stdout:\n{run.out[-3000:]}\nstderr:\n{run.err[-3000:]}"
    assert "the approval timed out after 5 s; nothing was changed" in run.err
    assert "Traceback" not in run.err
    report = only_report(workspace.reports_dir)
    assert report["status"] == "failed" and report["approval"]["timed_out"] is True


def test_piped_yes_approves_whatever_follows(workspace: Workspace) -> None:
    """``echo y | oms-audit migrate --execute``: the end of input at the comment means no comment."""
    run = Cli(["migrate", "--env", "test", "--execute"], harness_env())
    run.send("y\n")
    run.close_stdin()
    assert run.wait() == 0, f"stdout:\n{run.out[-3000:]}\nstderr:\n{run.err[-3000:]}"
    report = only_report(workspace.reports_dir)
    assert report["status"] == "succeeded"
    assert (report["approval"]["decision"], report["approval"]["via"]) == ("approve", "cli")
    assert report["approval"]["comment"] is None


def test_piped_no_is_recorded_as_a_rejection(workspace: Workspace) -> None:
    run = Cli(["migrate", "--env", "test", "--execute"], harness_env())
    run.send("n\n")
    run.close_stdin()
    assert run.wait() == 3, f"stdout:\n{run.out[-3000:]}\nstderr:\n{run.err[-3000:]}"
    approval = only_report(workspace.reports_dir)["approval"]
    assert (approval["decision"], approval["via"]) == ("reject", "cli")
    assert approval["comment"] is None, "an explicit no is the approver's rejection, not a missing answer"


# ---------------------------------------------------------------------------------------------------------
# No silent defaults, and configuration errors before Prefect starts


def refused_before_prefect(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with no Prefect API configured; it must exit 2 without starting one."""
    done = subprocess.run(
        [OMS_AUDIT, *args],
        cwd=ROOT,
        env={**no_prefect_env(home), **env},
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert done.returncode == 2, (
        f"exit {done.returncode}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"
    )
    assert "Traceback" not in done.stderr
    started = sorted(path.name for path in home.glob("*")) if home.exists() else []
    assert started == [], f"Prefect was started before the configuration error was reported: {started}"
    return done


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--env", "../x"], "not a valid environment name"),
        (["--env", ""], "must name an environment"),
        (["--env", "Production"], "lowercase letters, digits and dashes"),
        (["--env", "test", "--database", ""], "--database must not be empty"),
        (["--env", "test", "--branch", ""], "--branch must not be empty"),
    ],
)
def test_bad_names_are_refused_before_prefect_starts(
    workspace: Workspace, tmp_path: Path, args: list[str], expected: str
) -> None:
    done = refused_before_prefect(["migrate", "--dry-run", *args], tmp_path / "prefect")
    assert expected in " ".join(done.stderr.split())


def test_the_metadata_database_is_never_migrated(workspace: Workspace, tmp_path: Path) -> None:
    args = ["migrate", "--dry-run", "--env", "test", "--database", workspace.meta_database]
    done = refused_before_prefect(args, tmp_path / "prefect")
    assert "OMS_AUDIT_META_DB" in done.stderr and "metadata database" in done.stderr


def test_a_mistyped_url_is_reported_before_prefect_starts(workspace: Workspace, tmp_path: Path) -> None:
    args = ["migrate", "--dry-run", "--env", "test"]
    done = refused_before_prefect(args, tmp_path / "prefect", TERMINUS_DB_URL="terminus.example:6363")
    assert "TERMINUS_DB_URL" in done.stderr


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_an_unusable_reports_dir_is_refused_before_anything(workspace: Workspace, tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "reports-file"
    blocker.write_text("not a folder")
    directory = blocker if where == "file" else blocker / "reports"
    done = refused_before_prefect(
        ["migrate", "--dry-run", "--env", "test"], tmp_path / "prefect", OMS_AUDIT_REPORTS_DIR=str(directory)
    )
    message = " ".join(done.stderr.split())
    assert "OMS_AUDIT_REPORTS_DIR" in message and "--reports-dir" in message
    done = refused_before_prefect(
        ["migrate", "--dry-run", "--env", "test", "--reports-dir", str(directory)], tmp_path / "prefect"
    )
    assert "cannot be written" in done.stderr


def test_an_environment_nothing_configures_is_refused(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--env production`` with no block and no TERMINUS_DB_URL used to target 127.0.0.1:6363 as admin/root."""
    env = {key: value for key, value in harness_env().items() if not key.startswith("TERMINUS_DB_")}
    done = subprocess.run(
        [OMS_AUDIT, "migrate", "--dry-run", "--env", "production"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    message = " ".join(done.stderr.split())
    assert "block named 'production'" in message and "TERMINUS_DB_URL" in message
    assert not list(workspace.reports_dir.glob("migration_report_*.json")), "no run should have started"


@pytest.mark.parametrize("args", [["--bogus"], ["--env"], ["--dry-run", "--approval-timeout", "soon"], ["extra"]])
def test_the_guide_script_answers_usage_errors_like_the_cli(tmp_path: Path, args: list[str]) -> None:
    done = subprocess.run(
        [*GUIDE_SCRIPT, *args],
        cwd=ROOT,
        env=no_prefect_env(tmp_path / "prefect"),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Error" in done.stderr


def test_the_next_command_reuses_the_temporary_api_and_runs_stay_flow_runs(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Without PREFECT_API_URL the first command starts a temporary API that outlives it for a while; the next
    command finds it instead of waiting for another start. Both runs are flow runs there, with artifacts."""
    home = tmp_path / "prefect"
    env = {**no_prefect_env(home), "OMS_AUDIT_LOCAL_API_IDLE_SECONDS": "120"}
    state = home / "oms-audit-local-api.json"
    try:
        for attempt in range(2):
            done = subprocess.run(
                [OMS_AUDIT, "migrate", "--dry-run", "--env", "test"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=RUN_SECONDS,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            if attempt == 0:
                first = json.loads(state.read_text(encoding="utf-8"))
        assert json.loads(state.read_text(encoding="utf-8")) == first, "the second command started another API"
        os.kill(first["pid"], 0)  # still running after both commands
        reports = sorted(workspace.reports_dir.glob("migration_report_audit_fields_*.json"))
        run_ids = [json.loads(path.read_text(encoding="utf-8"))["flow_run_id"] for path in reports]
        assert len(run_ids) == 2
        for run_id in run_ids:
            run = httpx.get(f"{first['url']}/flow_runs/{run_id}", timeout=10).json()
            assert run["state_type"] == "COMPLETED"
            artifacts = httpx.post(
                f"{first['url']}/artifacts/filter",
                json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
                timeout=10,
            ).json()
            keys = {artifact["key"] for artifact in artifacts}
            assert any(key.startswith("audit-fields-plan-") for key in keys), artifacts
    finally:
        if state.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(json.loads(state.read_text(encoding="utf-8"))["pid"], signal.SIGTERM)
