"""Project-wide fixtures: one sandbox TerminusDB server per test session, fresh databases per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from sandbox.server import SandboxServer
from tests.iam_issuer import LocalIssuer

# Commands run in their own process, as without a warm runner; tests/flows/test_runner.py turns it on.
os.environ.setdefault("OMS_AUDIT_RUNNER_IDLE_SECONDS", "0")

ADMIN_AUTH = ("admin", "root")
ADMIN_TOKEN = "oms-audit-s3cret-admin-t0ken"  # a bearer token with admin rights (user ``automation``)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """A running sandbox server (``.url``); admin/root basic auth; token ``reader-token`` = user ``reader``
    with read-only access to every database, token ``writer-token`` = user ``writer`` (instance writes, no
    schema writes); ``ADMIN_TOKEN`` = user ``automation`` with admin rights."""
    server = SandboxServer(
        tokens={"reader-token": "reader", "writer-token": "writer", ADMIN_TOKEN: "automation"},
        roles={"reader": {"*": "reader"}, "writer": {"*": "writer"}},
    )
    with server:
        yield server


@pytest.fixture
def admin_http(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An httpx client for the sandbox, authenticated as admin."""
    with httpx.Client(base_url=sandbox.url, auth=ADMIN_AUTH, timeout=30) as client:
        yield client


@pytest.fixture
def make_db(sandbox: SandboxServer) -> Iterator[Callable[..., str]]:
    """Factory: ``make_db(prefix="t", **create_body)`` creates ``admin/<prefix>_<uuid8>`` and returns its name;
    the databases are deleted after the test."""
    created: list[str] = []
    with httpx.Client(base_url=sandbox.url, auth=ADMIN_AUTH, timeout=30) as client:

        def factory(prefix: str = "t", **body: object) -> str:
            name = f"{prefix}_{uuid.uuid4().hex[:8]}"
            reply = client.post(f"/api/db/admin/{name}", json={"label": name, **body})
            assert reply.status_code == 200, reply.text
            created.append(name)
            return name

        yield factory
        for name in created:
            client.delete(f"/api/db/admin/{name}")


@pytest.fixture
def fresh_db(make_db: Callable[..., str]) -> str:
    """The name of a new, empty database in team ``admin`` (deleted after the test)."""
    return make_db()


@pytest.fixture
def faults(sandbox: SandboxServer) -> Iterator[Callable[..., dict]]:
    """``faults(action=..., path_prefix=..., ...)`` installs a fault rule; all rules are cleared afterwards."""
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:

        def install(**rule: object) -> dict:
            reply = client.post("/_sandbox/faults", json=rule)
            assert reply.status_code == 200, reply.text
            return reply.json()[0]

        try:
            yield install
        finally:
            client.delete("/_sandbox/faults")


@pytest.fixture(scope="session")
def iam_server() -> Iterator[LocalIssuer]:
    """The local IAM issuer (real keys, verify + JWKS endpoints on a free loopback port), started once."""
    with LocalIssuer() as issuer:
        yield issuer


@pytest.fixture
def iam(iam_server: LocalIssuer) -> Iterator[LocalIssuer]:
    """The shared IAM issuer, its switches back to normal after the test."""
    iam_server.reset()
    yield iam_server
    iam_server.reset()
