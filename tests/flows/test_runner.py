"""The warm runner, as a user meets it: the same commands, served by a process that has Prefect imported.

Every command here is a real subprocess (``oms-audit`` or the guide's script) against the session's Prefect
API; which process ran it is read from the runner's log (each forked command is recorded with its pid).
"""

from __future__ import annotations

import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from prefect.client.orchestration import get_client

from cli.runner_client import PACKAGES, newest_source_mtime, socket_path

from .cli_process import OMS_AUDIT, ROOT, run_cli
from .conftest import Workspace
from .helpers import document_classes, missing_audit_fields, read_report
from .runner_fixtures import WarmRunner, running

GUIDE = [sys.executable, "migrations/production_audit_fields_migration.py", "--env", "test"]
DRY_RUN = ("migrate", "--env", "test", "--dry-run")


def guide(runner: WarmRunner, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GUIDE, *args],
        cwd=ROOT,
        env=runner.env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=300,
    )


def reports(directory: Path) -> list[dict[str, object]]:
    return [read_report(p) for p in sorted(directory.glob("migration_report_audit_fields_*.json"))]


def flow_run_completed(flow_run_id: object) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state  # type: ignore[arg-type]
    return state is not None and state.is_completed()


def test_the_next_dry_run_is_served_by_the_runner_the_first_left(workspace: Workspace, warm_runner: WarmRunner) -> None:
    first = guide(warm_runner, "--dry-run")
    assert first.returncode == 0, first.stderr[-3000:]
    assert warm_runner.served() == [], "the first command runs in its own process"
    runner_pid = warm_runner.wait_ready()  # left behind by the first command, at its exit

    second = guide(warm_runner, "--dry-run")
    assert second.returncode == 0, second.stderr[-3000:]
    third = run_cli(*DRY_RUN, env=warm_runner.env)
    assert third.returncode == 0, third.stderr[-3000:]
    assert len(warm_runner.served()) == 2, warm_runner.log()
    assert f"runner {runner_pid}: command" in warm_runner.log()

    planned = reports(workspace.reports_dir)
    assert [r["status"] for r in planned] == ["planned"] * 3
    assert len({r["plan"]["fingerprint"] for r in planned}) == 1  # type: ignore[index]
    assert all(flow_run_completed(r["flow_run_id"]) for r in planned)
    for result, report in zip((first, second, third), planned, strict=True):  # the pipe carries it all
        assert f"Plan {str(report['plan']['fingerprint'])[:12]}" in result.stdout  # type: ignore[index]
        assert "migration_report_audit_fields_" in result.stdout
        assert "Finished in state Completed()" in result.stderr


def test_exit_codes_and_a_piped_approval_come_through(workspace: Workspace, warm_runner: WarmRunner) -> None:
    runner_pid = warm_runner.start()
    bad = run_cli("migrate", "--env", "test", "--dry-run", "--include", "NoSuchType", env=warm_runner.env)
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "NoSuchType" in bad.stderr
    no = guide(warm_runner, "--execute", stdin="n\nnot today\n")
    assert no.returncode == 3, no.stderr[-3000:]
    yes = guide(warm_runner, "--execute", stdin="y\nreviewed\n")
    assert yes.returncode == 0, yes.stderr[-3000:]
    assert "Apply this plan?" in yes.stdout
    assert len(warm_runner.served()) == 3, warm_runner.log()

    rejected, succeeded = (r for r in reports(workspace.reports_dir) if r["mode"] == "execute")
    assert rejected["status"] == "rejected" and rejected["approval"]["comment"] == "not today"  # type: ignore[index]
    assert succeeded["status"] == "succeeded" and succeeded["approval"]["comment"] == "reviewed"  # type: ignore[index]
    with workspace.gateway() as gateway:
        schema = gateway.schema()
    assert all(missing_audit_fields(schema, name) == [] for name in document_classes(schema))

    status = run_cli("runner", "status", env=warm_runner.env)
    assert status.returncode == 0 and f"runner {runner_pid}: ready" in status.stdout
    stopped = run_cli("runner", "stop", env=warm_runner.env)  # served by that runner: it ends after
    assert stopped.returncode == 0 and "Stopped 1 warm runner(s)." in stopped.stdout, stopped.stderr
    deadline = time.monotonic() + 30
    while running(runner_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(runner_pid)


def test_an_answer_typed_at_a_terminal_is_relayed_to_the_command(workspace: Workspace, warm_runner: WarmRunner) -> None:
    warm_runner.start()
    terminal, user_side = pty.openpty()  # the command's stdin is a terminal: it cannot be handed over as is
    try:
        os.write(terminal, b"y\ntyped at the terminal\n")
        result = subprocess.run(
            [OMS_AUDIT, "migrate", "--env", "test", "--execute"],
            cwd=ROOT,
            env=warm_runner.env,
            stdin=user_side,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        os.close(user_side)
        os.close(terminal)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(warm_runner.served()) == 1, warm_runner.log()
    (report,) = reports(workspace.reports_dir)
    assert report["status"] == "succeeded"
    assert report["approval"]["comment"] == "typed at the terminal"  # type: ignore[index]


def test_a_killed_client_takes_its_command_with_it(workspace: Workspace, warm_runner: WarmRunner) -> None:
    warm_runner.start()
    client = subprocess.Popen(
        [OMS_AUDIT, "migrate", "--env", "test", "--execute"],  # waits at the question: stdin stays open
        cwd=ROOT,
        env=warm_runner.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        assert client.stdout is not None
        shown = b""
        while b"Apply this plan?" not in shown:  # the command got as far as asking
            chunk = os.read(client.stdout.fileno(), 1 << 16)
            assert chunk, "the command ended before it asked"
            shown += chunk
        (child,) = warm_runner.served()
        assert running(child)
        os.killpg(client.pid, signal.SIGKILL)
        client.wait(30)
        deadline = time.monotonic() + 30
        while running(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(child), "the command outlived its client"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(30)


def test_an_edited_source_is_never_run_by_an_old_runner(
    workspace: Workspace, warm_runner: WarmRunner, tmp_path: Path
) -> None:
    """In a copy of the checkout (a touched file of the real one would end every other test's runner)."""
    copy = tmp_path / "checkout"
    skip = shutil.ignore_patterns(".*", "__pycache__", "*-reports", "tests")
    shutil.copytree(ROOT, copy, ignore=skip)
    runner = WarmRunner(warm_runner.env, copy)
    script = [sys.executable, str(copy / "migrations" / "production_audit_fields_migration.py"), "--env", "test"]

    def dry_run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*script, "--dry-run"], cwd=copy, env=runner.env, capture_output=True, text=True, timeout=300
        )

    first = dry_run()
    assert first.returncode == 0, first.stderr[-3000:]
    runner_pid = runner.wait_ready()  # the copy's own runner, running the copy's code
    os.utime(copy / "cli" / "__init__.py")  # as an editor saving the file would
    result = dry_run()
    assert result.returncode == 0, result.stderr[-3000:]
    assert runner.served() == [], runner.log()
    deadline = time.monotonic() + 30
    while running(runner_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(runner_pid), "the old runner ends once its sources moved"
    assert "the project's sources changed" in runner.log()


def test_no_runner_with_idle_zero_nor_through_a_stale_socket(workspace: Workspace, warm_runner: WarmRunner) -> None:
    off = run_cli(*DRY_RUN, env={**warm_runner.env, "OMS_AUDIT_RUNNER_IDLE_SECONDS": "0"})
    assert off.returncode == 0, off.stderr[-3000:]
    assert not warm_runner.folder.exists(), "idle 0: no runner is ever started"

    warm_runner.folder.mkdir(mode=0o700, parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(socket_path(warm_runner.env, warm_runner.key())))
    stale.close()  # the file stays, nobody listens: a runner that was killed
    result = run_cli(*DRY_RUN, env=warm_runner.env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert warm_runner.served() == []
    assert [r["status"] for r in reports(workspace.reports_dir)] == ["planned", "planned"]


def test_a_bad_idle_lifetime_is_a_configuration_error(workspace: Workspace, warm_runner: WarmRunner) -> None:
    result = run_cli(*DRY_RUN, env={**warm_runner.env, "OMS_AUDIT_RUNNER_IDLE_SECONDS": "soon"})
    assert result.returncode == 2
    assert "OMS_AUDIT_RUNNER_IDLE_SECONDS='soon'" in result.stderr and "0 runs every command" in result.stderr


def test_the_key_covers_the_project_packages_and_nothing_else(tmp_path: Path) -> None:
    """The walk is the wheel's packages only: installed, the project's root is site-packages."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert list(PACKAGES) == pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    (tmp_path / "core").mkdir()
    (tmp_path / "some_dependency").mkdir()
    (tmp_path / "core" / "module.py").write_text("")
    os.utime(tmp_path / "core" / "module.py", ns=(1_000, 1_000))
    (tmp_path / "some_dependency" / "module.py").write_text("")
    os.utime(tmp_path / "some_dependency" / "module.py", ns=(9_000, 9_000))
    assert newest_source_mtime(tmp_path) == 1_000
