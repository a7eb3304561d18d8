"""A real ``prefect server start`` (SQLite, loopback, temporary home) for the deployment end-to-end tests.

Not Prefect's test harness: ``prefect deploy``, ``serve`` and the UI's resume call all talk to a server
started exactly as an operator would start one.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# Before Prefect is imported: keep its state out of the user's home, and keep test output clean.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="oms-audit-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from sandbox.server import SandboxServer
from tests.deployments.processes import BackgroundProcess, clean_environment, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER_STARTUP_SECONDS = 120


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server: its API URL and a home folder for the clients that talk to it."""

    api_url: str
    home: Path
    process: BackgroundProcess

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def database(self) -> Path:
        return self.home / "prefect.db"

    def client_env(self, **extra: str) -> dict[str, str]:
        """The environment of a CLI, ``serve`` or worker process pointed at this server."""
        return clean_environment(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            **extra,
        )


def _healthy(base_url: str) -> bool | None:
    try:
        reply = httpx.get(f"{base_url}/api/health", timeout=2)
    except httpx.TransportError:
        return None
    return True if reply.status_code == 200 and reply.json() is True else None


@pytest.fixture(scope="package")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port; this process's Prefect client points at it too."""
    state = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = clean_environment(
        PREFECT_HOME=str(state),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{state / 'prefect.db'}",
        # the UI (for the browser tests) is built into this folder, not into the installed package
        PREFECT_SERVER_UI_STATIC_DIRECTORY=str(state / "ui"),
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",  # what the browser's UI calls (default: port 4200)
    )
    command = [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    process = BackgroundProcess.start("prefect-server", command, env=env, cwd=state, log_dir=state)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "the Prefect server's /api/health",
            lambda: _healthy(base_url),
            timeout=SERVER_STARTUP_SECONDS,
            watch=[process],
        )
        server = PrefectServer(api_url=f"{base_url}/api", home=state, process=process)
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield server
            finally:
                # events this process sent (a block's `loaded` event) are delivered while the server lives: a
                # worker left retrying a stopped server would stall the next harness's events (task runs)
                EventsWorker.drain_all(timeout=30)
    finally:
        process.stop()


@pytest.fixture
def sandbox_demo() -> Iterator[SandboxServer]:
    """The sandbox TerminusDB seeded with the demo ontology (database ``admin/oms``)."""
    with SandboxServer(seed="demo") as server:
        yield server
