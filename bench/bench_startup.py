"""Start-up as a user meets it: wall-clock time of the guide's commands, run as separate processes.

    python migrations/production_audit_fields_migration.py --env production --dry-run

against the sandbox seeded with the demo ontology (``TERMINUS_DB_URL`` set, as in production), in four
situations:

- **config error**: ``TERMINUS_DB_URL`` mistyped (no scheme); no Prefect API configured;
- **no Prefect server, first command**: no ``PREFECT_API_URL``, nothing running: the CLI starts its temporary
  API (its database already exists in ``PREFECT_HOME``, as after any earlier use);
- **no Prefect server, next command**: the same, with the temporary API the previous command left running
  (``OMS_AUDIT_LOCAL_API_IDLE_SECONDS``) reused;
- **running Prefect server**: ``PREFECT_API_URL`` pointing at a ``prefect server start`` on loopback, with the
  warm runner off (``OMS_AUDIT_RUNNER_IDLE_SECONDS=0``), then on: the **first command** (no runner yet: it runs
  in its own process and leaves a runner at its exit; the runner is stopped before each repeat) and the **next
  command** (served by the warm runner the previous one left). For the warm runner, CPU is the client's plus
  the forked child's (the runner's reaped children, read from ``/proc``): the command's whole work.

Each dry run is checked to have completed (exit 0, a ``planned`` report). Time is from process start to exit
(wall clock), and the CPU time of the command's process (user + sys, its own and its waited-for children's:
a temporary API it starts and stops itself counts, a reused one does not). The machine's load average is
printed with the results: the wall clock of a shared machine says as much about the neighbours as about us.
Bytecode caches are allowed (``PYTHONDONTWRITEBYTECODE`` is removed for the commands, as on a normal
install): without them every process recompiles Prefect from source, several seconds of CPU on its own.

Run: ``uv run python bench/bench_startup.py [--repeats N]``. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
GUIDE = [sys.executable, "migrations/production_audit_fields_migration.py", "--env", "production"]
PREFECT = str(Path(sys.executable).with_name("prefect"))


CPU: list[float] = []
"""CPU seconds of each timed command, in order (kept beside the wall-clock samples)."""


def base_env(**extra: str) -> dict[str, str]:
    prefixes = ("PREFECT_", "TERMINUS_", "OMS_AUDIT_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


def timed(args: list[str], env: dict[str, str], expect: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}, expected {expect}:\n{done.stderr[-3000:]}")
    return seconds


def check_planned(reports: Path) -> None:
    newest = sorted(reports.glob("migration_report_audit_fields_*.json"))[-1]
    status = json.loads(newest.read_text(encoding="utf-8"))["status"]
    if status != "planned":
        raise SystemExit(f"{newest.name}: status {status}, expected planned")
    for path in reports.iterdir():
        path.unlink()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    port = free_port()
    env = base_env(PREFECT_HOME=str(home))
    command = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("prefect server did not start")
            time.sleep(0.5)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def stop_local_api(home: Path) -> None:
    """Stop the temporary API a command left running in ``home`` (read from the CLI's state file)."""
    state = home / "oms-audit-local-api.json"
    if state.exists():
        pid = json.loads(state.read_text(encoding="utf-8"))["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass
        state.unlink()


def runner_children_cpu(home: Path) -> float:
    """CPU seconds of the runners' reaped children (cutime + cstime in /proc), 0 without a runner."""
    total = 0.0
    for state in (home / "oms-audit-runner").glob("*.json"):
        pid = json.loads(state.read_text(encoding="utf-8"))["pid"]
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_for_runner(home: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for state in (home / "oms-audit-runner").glob("*.json"):
            try:
                if json.loads(state.read_text(encoding="utf-8")).get("ready"):
                    return
            except (OSError, ValueError):
                pass
        time.sleep(0.2)
    raise SystemExit("no warm runner became ready")


def stop_runners(home: Path) -> None:
    for state in (home / "oms-audit-runner").glob("*.json"):
        try:
            pid = json.loads(state.read_text(encoding="utf-8"))["pid"]
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError, KeyError):
            pass


def row(name: str, goal: str, samples: list[float], cpu: list[float]) -> str:
    median = statistics.median(samples)
    limit = float(goal.split()[1])
    verdict = "met" if median <= limit else "NOT MET"
    return (
        f"| {name} | {median:.2f} | {min(samples):.2f} | {max(samples):.2f} | {statistics.median(cpu):.2f} "
        f"| {goal} s | {verdict} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oms-audit-bench-startup-"))
    reports = work / "reports"
    home = work / "prefect-home"
    results: list[tuple[str, str, list[float], list[float]]] = []
    try:
        with SandboxServer(seed="demo") as sandbox:
            terminus = {
                "TERMINUS_DB_URL": sandbox.url,
                "TERMINUS_DB_NAME": "oms",
                "OMS_AUDIT_REPORTS_DIR": str(reports),
            }
            local = base_env(PREFECT_HOME=str(home), OMS_AUDIT_RUNNER_IDLE_SECONDS="0", **terminus)

            def measure(name: str, goal: str, once: Callable[[], float]) -> None:
                samples, cpu = [], []
                for _ in range(args.repeats):
                    samples.append(once())
                    cpu.append(CPU[-1])
                results.append((name, goal, samples, cpu))

            # Warm the bytecode caches and PREFECT_HOME's database, as any earlier use would have.
            timed([*GUIDE, "--dry-run"], {**local, "OMS_AUDIT_LOCAL_API_IDLE_SECONDS": "0"}, 0)
            check_planned(reports)
            bad = {**local, "TERMINUS_DB_URL": "terminus.example:6363"}
            measure("config error (mistyped TERMINUS_DB_URL)", "<= 2", lambda: timed([*GUIDE, "--dry-run"], bad, 2))

            def first() -> float:
                stop_local_api(home)
                seconds = timed([*GUIDE, "--dry-run"], local, 0)
                check_planned(reports)
                return seconds

            def reused() -> float:
                seconds = timed([*GUIDE, "--dry-run"], local, 0)
                check_planned(reports)
                return seconds

            measure("dry run, no Prefect server, first command", "<= 6", first)
            measure("dry run, no Prefect server, next command", "<= 6", reused)
            stop_local_api(home)

            with prefect_server(work / "server-home") as api_url:
                client_home = work / "client-home"
                served = base_env(
                    PREFECT_HOME=str(client_home),
                    PREFECT_API_URL=api_url,
                    OMS_AUDIT_RUNNER_IDLE_SECONDS="0",
                    **terminus,
                )
                timed([*GUIDE, "--dry-run"], served, 0)  # the server's first flow run registers the flow
                check_planned(reports)

                def against_server() -> float:
                    seconds = timed([*GUIDE, "--dry-run"], served, 0)
                    check_planned(reports)
                    return seconds

                measure("dry run, PREFECT_API_URL at a running server, runner off", "<= 3", against_server)

                warm = {**served, "OMS_AUDIT_RUNNER_IDLE_SECONDS": "600"}

                def first_command() -> float:
                    stop_runners(client_home)
                    seconds = timed([*GUIDE, "--dry-run"], warm, 0)
                    check_planned(reports)
                    wait_for_runner(client_home)  # left by the command at its exit; not part of its time
                    return seconds

                def next_command() -> float:
                    wait_for_runner(client_home)
                    before = runner_children_cpu(client_home)
                    seconds = timed([*GUIDE, "--dry-run"], warm, 0)
                    CPU[-1] += runner_children_cpu(client_home) - before
                    check_planned(reports)
                    return seconds

                measure("running Prefect server, first command (runner not yet warm)", "<= 3", first_command)
                measure("running Prefect server, next command (warm runner)", "<= 3", next_command)
                stop_runners(client_home)
    finally:
        stop_runners(work / "client-home")
        stop_local_api(home)
        shutil.rmtree(work, ignore_errors=True)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"Command: `uv run python bench/bench_startup.py --repeats {args.repeats}` (seconds; {os.cpu_count()} CPUs, ")
    print(f"load average at the end {load})\n")
    print("| situation | wall median | wall min | wall max | CPU median | goal (wall) | |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, goal, samples, cpu in results:
        print(row(name, goal, samples, cpu))


if __name__ == "__main__":
    main()
