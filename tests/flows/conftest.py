"""Flow tests: one Prefect test harness for the session, and a seeded database per test.

Flows run in this process against the harness's API and reach the session's sandbox TerminusDB over HTTP
through the environment variables of the guide, exactly as the CLI does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before Prefect is imported: keep its state out of the user's home, and keep test output clean.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="oms-audit-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from prefect.testing.utilities import prefect_test_harness

from blocks.environment import resolve_terminus
from cli.flow_runner import FlowOutcome, run_flow
from core.settings import TerminusSettings, load_settings
from core.terminus import TerminusGateway
from flows.audit_fields_migration import audit_fields_migration
from sandbox.demo_seed import demo_documents, demo_schema
from sandbox.server import SandboxServer
from tests.conftest import ADMIN_TOKEN

from .cli_process import cli_env
from .runner_fixtures import WarmRunner

ENV = "test"


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=60):
        yield


def approve(description: str) -> dict[str, Any]:
    return {"decision": "approve", "approver": "alice", "comment": "looks right", "via": "test"}


def reject(description: str) -> dict[str, Any]:
    return {"decision": "reject", "approver": "bob", "comment": "not during the release freeze", "via": "test"}


@dataclass
class Workspace:
    """A seeded ontology database, its own metadata database and reports folder, wired through the env."""

    database: str
    meta_database: str
    reports_dir: Path
    dlq_dir: Path
    url: str

    def settings(self) -> TerminusSettings:
        """The workspace's own server, whatever a test has since done to the environment."""
        return load_settings(TerminusSettings, url=self.url, token=ADMIN_TOKEN, meta_database=self.meta_database)

    def gateway(self, database: str | None = None) -> TerminusGateway:
        return TerminusGateway(self.settings(), database=database or self.database)

    def migrate(
        self, *, dry_run: bool, answer: Callable[[str], dict[str, Any]] | None = approve, **params: Any
    ) -> FlowOutcome:
        parameters = {
            "env": ENV,
            "dry_run": dry_run,
            "approval_poll_seconds": 1,
            "reports_dir": str(self.reports_dir),
            **params,
        }
        return run_flow(audit_fields_migration, parameters, answer=answer)


def seed(gateway: TerminusGateway, schema: list[dict[str, Any]], documents: list[dict[str, Any]]) -> None:
    gateway.insert_documents(schema, author="test", message="seed schema", graph_type="schema")
    if documents:
        gateway.insert_documents(documents, author="test", message="seed documents")


@pytest.fixture
def workspace(
    sandbox: SandboxServer, make_db: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A database holding the demo ontology, with the environment pointing every flow at it."""
    database = make_db("flow")
    meta = f"meta_{uuid.uuid4().hex[:8]}"
    space = Workspace(database, meta, tmp_path / "reports", tmp_path / "dlq", sandbox.url)
    for name, value in {
        "TERMINUS_DB_URL": sandbox.url,
        "TERMINUS_DB_TEAM": "admin",
        "TERMINUS_DB_NAME": database,
        "TERMINUS_DB_TOKEN": ADMIN_TOKEN,
        "OMS_AUDIT_META_DB": meta,
        "OMS_AUDIT_REPORTS_DIR": str(space.reports_dir),
        "OMS_AUDIT_DLQ_DIR": str(space.dlq_dir),
    }.items():
        monkeypatch.setenv(name, value)
    resolve_terminus.cache_clear()
    with space.gateway() as gateway:
        seed(gateway, demo_schema(), demo_documents())
    yield space
    resolve_terminus.cache_clear()
    with space.gateway(meta) as gateway:
        gateway.delete_database(meta, missing_ok=True)


@pytest.fixture
def warm_runner(workspace: Workspace) -> Iterator[WarmRunner]:
    """The CLI's environment with the runner on (a short home: a Unix socket path has ~100 bytes)."""
    home = Path(tempfile.mkdtemp(prefix="oms-rn-"))
    runner = WarmRunner(cli_env(PREFECT_HOME=str(home), OMS_AUDIT_RUNNER_IDLE_SECONDS="300"))
    try:
        yield runner
    finally:
        runner.stop_all()
        shutil.rmtree(home, ignore_errors=True)
