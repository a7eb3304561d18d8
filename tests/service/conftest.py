"""The service as a user meets it: a real process on a free loopback port, backed by the sandbox and the local IAM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.audit_fields import audit_field_range
from sandbox.server import SandboxServer
from tests.conftest import ADMIN_AUTH
from tests.iam_issuer import AUDIENCE, ISSUER, LocalIssuer

ROOT = Path(__file__).resolve().parents[2]
AUDIT_FIELDS = {name: audit_field_range(name) for name in ("_created_by", "_created_by_username", "_created_at")} | {
    name: audit_field_range(name) for name in ("_updated_by", "_updated_by_username", "_updated_at")
}

#: ObjectType with the audit fields (as after the migration); Plain without them (as before it)
SCHEMA: list[dict[str, Any]] = [
    {"@type": "Class", "@id": "ObjectType", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"}
    | {"description": {"@type": "Optional", "@class": "xsd:string"}}
    | AUDIT_FIELDS,
    {"@type": "Class", "@id": "LinkType", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"}
    | AUDIT_FIELDS,
    {"@type": "Class", "@id": "Plain", "@key": {"@type": "Lexical", "@fields": ["name"]}, "name": "xsd:string"},
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_ontology(sandbox: SandboxServer, schema: list[dict[str, Any]] | None = None) -> str:
    name = f"svc_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=sandbox.url, auth=ADMIN_AUTH, timeout=30) as client:
        assert client.post(f"/api/db/admin/{name}", json={"label": name}).status_code == 200
        reply = client.post(
            f"/api/document/admin/{name}",
            params={"graph_type": "schema", "author": "test", "message": "schema"},
            json=schema or SCHEMA,
        )
        assert reply.status_code == 200, reply.text
    return name


def drop_database(sandbox: SandboxServer, name: str) -> None:
    with httpx.Client(base_url=sandbox.url, auth=ADMIN_AUTH, timeout=30) as client:
        client.delete(f"/api/db/admin/{name}")


class ServiceProcess:
    """``python -m service`` (or ``oms-audit serve``) in a subprocess; its log goes to ``log_path``."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        command: list[str] | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_path = log_path
        args = ["--host", "127.0.0.1", "--port", str(self.port)]
        self.command = [*(command or [sys.executable, "-m", "service"]), *args]
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=preexec
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}: {self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service did not start: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def service_env(
    sandbox: SandboxServer, iam: LocalIssuer, database: str, meta: str, dlq_dir: Path, *, verifier: str, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IAM_", "TERMINUS_DB_", "OMS_AUDIT_", "AUDIT_"))}
    env.update(
        OMS_AUDIT_RUNNER_IDLE_SECONDS="0",  # no warm runner left behind
        TERMINUS_DB_URL=sandbox.url,
        TERMINUS_DB_NAME=database,
        TERMINUS_DB_TIMEOUT_SECONDS="3",
        OMS_AUDIT_META_DB=meta,
        OMS_AUDIT_DLQ_DIR=str(dlq_dir),
        OMS_AUDIT_SINK_TIMEOUT_SECONDS="1",
        OMS_AUDIT_FREEZE_POLL_SECONDS="0.2",
        IAM_TIMEOUT_SECONDS="1",
    )
    if verifier == "jwks":
        env.update(IAM_JWKS_URL=iam.jwks_url, IAM_ISSUER=ISSUER, IAM_AUDIENCE=AUDIENCE)
    else:
        env.update(IAM_SERVICE_URL=iam.url)
    env.update(extra)
    return env


class Deployment:
    """A running service with its ontology database, metadata database and DLQ folder."""

    def __init__(self, service: ServiceProcess, database: str, meta: str, dlq_dir: Path, env: dict[str, str]) -> None:
        self.service = service
        self.database = database
        self.meta = meta
        self.dlq_dir = dlq_dir
        self.env = env
        self.client = httpx.Client(base_url=service.url, timeout=30)

    @property
    def url(self) -> str:
        return self.service.url

    def close(self) -> None:
        self.client.close()
        self.service.stop()


@pytest.fixture
def deploy(sandbox: SandboxServer, iam: LocalIssuer, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Factory: ``deploy(verifier="jwks"|"iam_service", dlq_dir=..., command=..., preexec=..., schema=..., **env)``."""
    started: list[Deployment] = []
    databases: list[str] = []

    def start(
        *,
        verifier: str = "jwks",
        dlq_dir: Path | None = None,
        command: list[str] | None = None,
        preexec: Callable[[], None] | None = None,
        schema: list[dict[str, Any]] | None = None,
        **extra: str,
    ) -> Deployment:
        database = make_ontology(sandbox, schema)
        meta = f"meta_{uuid.uuid4().hex[:8]}"
        databases.extend([database, meta])
        directory = dlq_dir or tmp_path / f"dlq-{len(started)}"
        if dlq_dir is None:
            directory.mkdir()
        env = service_env(sandbox, iam, database, meta, directory, verifier=verifier, **extra)
        process = ServiceProcess(env, tmp_path / f"service-{len(started)}.log", command=command, preexec=preexec)
        deployment = Deployment(process, database, meta, directory, env)
        started.append(deployment)
        return deployment

    try:
        yield start
    finally:
        for deployment in started:
            deployment.close()
        for name in databases:
            drop_database(sandbox, name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def shared(
    sandbox: SandboxServer, iam_server: LocalIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One service (IAM-service verifier) for the tests of a module that leave it as they found it."""
    tmp = tmp_path_factory.mktemp("service")
    database = make_ontology(sandbox)
    meta = f"meta_{uuid.uuid4().hex[:8]}"
    dlq_dir = tmp / "dlq"
    dlq_dir.mkdir()
    env = service_env(sandbox, iam_server, database, meta, dlq_dir, verifier="iam_service")
    deployment = Deployment(ServiceProcess(env, tmp / "service.log"), database, meta, dlq_dir, env)
    try:
        yield deployment
    finally:
        deployment.close()
        drop_database(sandbox, database)
        drop_database(sandbox, meta)
