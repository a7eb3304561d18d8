"""A warm runner for a test (the ``warm_runner`` fixture): where it lives, what it served, how to stop it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from cli import local_state
from cli.runner_client import runner_dir, runner_key, start_runner, state_path, with_known_api

from .cli_process import ROOT


@dataclass
class WarmRunner:
    env: dict[str, str]
    root: Path = ROOT
    """The checkout the commands run from (and the runner's working directory)."""

    @property
    def folder(self) -> Path:
        return runner_dir(self.env)

    def key(self) -> str:
        known = with_known_api(self.env)
        assert known is not None
        return runner_key(known, str(self.root), self.root)

    def log(self) -> str:
        path = self.folder / "runner.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def served(self) -> list[int]:
        """The pids of the commands the runners of this home forked."""
        return [int(pid) for pid in re.findall(r"command (\d+) started", self.log())]

    def wait_ready(self, timeout: float = 120) -> int:
        """The pid of the runner for this environment, once it listens."""
        path = state_path(self.env, self.key())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = local_state.read_state(path) or {}
            if state.get("ready") and running(int(state["pid"])):
                return int(state["pid"])
            time.sleep(0.2)
        raise AssertionError(f"no runner became ready; its log:\n{self.log()[-3000:]}")

    def start(self) -> int:
        start_runner(self.env, str(ROOT))
        return self.wait_ready()

    def stop_all(self) -> None:
        for path in self.folder.glob("*.json") if self.folder.exists() else []:
            pid = (local_state.read_state(path) or {}).get("pid")
            if isinstance(pid, int):
                stop_process(pid)


def running(pid: int) -> bool:
    """Whether the process runs (a runner this test process started, once ended, is reaped here first)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return local_state.process_alive(pid)


def stop_process(pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(pid):
        os.kill(pid, signal.SIGKILL)
