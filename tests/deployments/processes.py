"""Long-running subprocesses for end-to-end tests: started with Popen, logged to a file, stopped by signal.

Every wait is bounded and every failure message carries the tail of the processes' output, because a
``prefect server`` or ``serve`` that died quietly is otherwise invisible from the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

# What the tests' subprocesses must not inherit from the pytest process (its Prefect harness, its targets).
INHERITED_PREFIXES = ("PREFECT_", "TERMINUS_", "OMS_AUDIT_")


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without Prefect/TerminusDB/oms-audit settings, plus ``extra`` (and no warm
    runner left behind by a test's command, unless ``extra`` asks for one)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(INHERITED_PREFIXES)}
    env["OMS_AUDIT_RUNNER_IDLE_SECONDS"] = "0"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BackgroundProcess:
    """A subprocess whose stdout and stderr go to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path
    ) -> BackgroundProcess:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(list(args), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        return cls(name, popen, log_path)

    def output(self, limit: int = 6000) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return text[-limit:]

    def report(self) -> str:
        state = "running" if self.popen.poll() is None else f"exited with code {self.popen.returncode}"
        return f"--- {self.name} ({state}), last output:\n{self.output()}"

    def stop(self, grace_seconds: float = 20) -> None:
        """SIGTERM, then SIGKILL when it has not exited after ``grace_seconds``."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    watch: Sequence[BackgroundProcess] = (),
    interval: float = 0.5,
) -> T:
    """Poll ``probe`` until it returns something other than None; fail with the watched processes' output
    when the time is up or one of them exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        dead = [process for process in watch if process.popen.poll() is not None]
        if dead or time.monotonic() > deadline:
            reason = f"{dead[0].name} exited" if dead else f"not done after {timeout:.0f} s"
            details = "\n".join(process.report() for process in watch)
            pytest.fail(f"waiting for {what}: {reason}\n{details}", pytrace=False)
        time.sleep(interval)
