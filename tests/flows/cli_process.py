"""The ``oms-audit`` command as a user runs it: a separate process, its own process group, real signals."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from prefect.settings import PREFECT_API_URL

ROOT = Path(__file__).resolve().parents[2]
OMS_AUDIT = str(Path(sys.executable).with_name("oms-audit"))


def cli_env(**overrides: str) -> dict[str, str]:
    """This test process's environment (the workspace's settings) plus the Prefect API the tests use."""
    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), **overrides}


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OMS_AUDIT, *args],
        cwd=ROOT,
        env=dict(env or cli_env()),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``oms-audit`` in a new process group (as a shell runs a foreground job), for os.killpg."""
    return subprocess.Popen(
        [OMS_AUDIT, *args],
        cwd=ROOT,
        env=dict(env or cli_env()),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
    )
