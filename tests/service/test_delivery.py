"""Nothing is lost: sink down → DLQ; DLQ unusable too → 503 and the write undone; metrics; the write freeze."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.audit import Actor, AuditEvent
from sandbox.server import SandboxServer
from tests.iam_issuer import LocalIssuer
from tests.service.conftest import ROOT, Deployment, bearer
from tests.service.test_objects import stored


def _sink_down(faults: Callable[..., dict], deployment: Deployment) -> None:
    """Every call on the metadata database fails, as when the audit backend is down."""
    faults(action="status", status=503, path_prefix=f"/api/document/admin/{deployment.meta}", times=None)


def dlq_lines(directory: Path) -> list[dict[str, Any]]:
    path = directory / "audit_dlq_fallback.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sink_down_the_write_succeeds_and_the_event_is_in_the_dlq(
    deploy: Callable[..., Deployment], iam: LocalIssuer, faults: Callable[..., dict], sandbox: SandboxServer
) -> None:
    deployment = deploy()
    _sink_down(faults, deployment)
    token = iam.token("u-dlq", username="dora")
    reply = deployment.client.post(
        "/api/v1/objects", json={"name": "test", "type": "ObjectType"}, headers=bearer(token)
    )
    assert reply.status_code == 201, reply.text
    assert reply.headers["X-Audit-Stored-In"] == "dlq"
    assert stored(sandbox, deployment.database, "ObjectType/test") is not None
    lines = dlq_lines(deployment.dlq_dir)
    event = next(line for line in lines if line["resource_id"] == "ObjectType/test")
    assert event["action"] == "create" and event["success"] is True
    assert event["actor"] == {"id": "u-dlq", "username": "dora", "kind": "user"}
    assert event["dlq_type"] == "fallback" and event["attempts"] == 1
    assert event["last_error"]["message"]
    assert AuditEvent.from_json_line(json.dumps(event)).event_id == event["event_id"]
    assert token not in (deployment.dlq_dir / "audit_dlq_fallback.jsonl").read_text()


def test_sink_and_dlq_both_unusable_is_503_and_nothing_is_stored(
    deploy: Callable[..., Deployment],
    iam: LocalIssuer,
    faults: Callable[..., dict],
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "dlq-is-a-file"
    not_a_folder.write_text("this is a file, so no DLQ file can be created under it\n")
    deployment = deploy(dlq_dir=not_a_folder)
    _sink_down(faults, deployment)
    reply = deployment.client.post(
        "/api/v1/objects", json={"name": "unaudited", "type": "ObjectType"}, headers=bearer(iam.token())
    )
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == "audit_undeliverable"
    assert "OMS_AUDIT_DLQ_DIR" in reply.json()["message"]
    assert reply.headers["Retry-After"]
    assert stored(sandbox, deployment.database, "ObjectType/unaudited") is None
    ready = deployment.client.get("/readyz")
    assert ready.status_code == 503 and "OMS_AUDIT_DLQ_DIR" in ready.json()["checks"]["dlq_dir"]


def _fill(path: Path, size: int) -> None:
    """Whole DLQ lines up to at least ``size`` bytes."""
    event = AuditEvent.new(
        action="create",
        resource_type="ObjectType",
        resource_id="ObjectType/old",
        actor=Actor(id="u", username=None, kind="user"),
        success=True,
        details={},
    )
    line = event.to_json_line() + "\n"
    with path.open("w") as handle:
        while handle.tell() < size:
            handle.write(line.replace(event.event_id, str(uuid.uuid4())))


def _limited_file_size(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: no file may grow past ``limit`` bytes (a full disk, for the DLQ, unprivileged);
    SIGXFSZ ignored, so a write past it fails with EFBIG instead of killing the process."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # the soft limit: raising it again needs no privilege

    return apply


def _check_dlq_lines(path: Path) -> list[AuditEvent]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [AuditEvent.from_json_line(line) for line in data.splitlines()]


def test_disk_full_dlq_write_is_503_and_nothing_is_stored(
    deploy: Callable[..., Deployment],
    iam: LocalIssuer,
    faults: Callable[..., dict],
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    limit = 4 * 1024 * 1024
    dlq_dir = tmp_path / "full"
    dlq_dir.mkdir()
    path = dlq_dir / "audit_dlq_fallback.jsonl"
    _fill(path, limit - 1000)  # whole lines, ending well under a line short of the limit
    before = path.read_bytes()
    room = limit - len(before)
    assert 0 < room < 1400
    deployment = deploy(dlq_dir=dlq_dir, preexec=_limited_file_size(limit))
    _sink_down(faults, deployment)
    reply = deployment.client.post(
        "/api/v1/objects", json={"name": "full", "type": "ObjectType"}, headers=bearer(iam.token())
    )
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == "audit_undeliverable"
    assert "file size limit" in reply.json()["message"]
    assert stored(sandbox, deployment.database, "ObjectType/full") is None
    assert path.read_bytes() == before  # the part of a line that fitted was taken back

    # room again (as when the disk is cleaned up): the next append is whole and every line still parses
    hard = resource.prlimit(deployment.service.process.pid, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(deployment.service.process.pid, resource.RLIMIT_FSIZE, (hard, hard))
    reply = deployment.client.post(
        "/api/v1/objects", json={"name": "after", "type": "ObjectType"}, headers=bearer(iam.token())
    )
    assert reply.status_code == 201, reply.text
    assert reply.headers["X-Audit-Stored-In"] == "dlq"
    assert path.read_bytes().startswith(before)
    events = _check_dlq_lines(path)
    assert [e.resource_id for e in events[before.count(b"\n") :]] == ["ObjectType/after"]
    assert len(path.read_bytes()) - len(before) > room  # so the first attempt had been torn at the limit


def _tmpfs(directory: Path, size: str) -> bool:
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True, check=False
    )
    return mounted.returncode == 0


def test_full_tmpfs_dlq_write_is_503_and_nothing_is_stored(
    deploy: Callable[..., Deployment],
    iam: LocalIssuer,
    faults: Callable[..., dict],
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    """A real ENOSPC on a tiny tmpfs, where mounting one is allowed (it needs privileges)."""
    dlq_dir = tmp_path / "tiny"
    if not _tmpfs(dlq_dir, "64k"):
        pytest.skip("mounting a tmpfs needs privileges this environment does not have")
    try:
        path = dlq_dir / "audit_dlq_fallback.jsonl"
        filler = dlq_dir / "filler"
        with (
            filler.open("wb", buffering=0) as handle,
            contextlib.suppress(OSError),
        ):  # the disk, not the DLQ file, is full
            while True:
                handle.write(b"x" * 4096)
        _fill(path, 0)
        deployment = deploy(dlq_dir=dlq_dir)
        _sink_down(faults, deployment)
        reply = deployment.client.post(
            "/api/v1/objects", json={"name": "nospace", "type": "ObjectType"}, headers=bearer(iam.token())
        )
        assert reply.status_code == 503, reply.text
        assert "disk full" in reply.json()["message"]
        assert stored(sandbox, deployment.database, "ObjectType/nospace") is None
        assert not path.exists() or path.read_bytes() == b""
        filler.unlink()  # space again: the next write's event lands whole
        reply = deployment.client.post(
            "/api/v1/objects", json={"name": "space", "type": "ObjectType"}, headers=bearer(iam.token())
        )
        assert reply.status_code == 201, reply.text
        assert [e.resource_id for e in _check_dlq_lines(path)] == ["ObjectType/space"]
        deployment.close()
    finally:
        subprocess.run(["umount", "-l", str(dlq_dir)], capture_output=True, check=False)


def _metric(text: str, name: str, labels: dict[str, str]) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_show_the_guide_counters(deploy: Callable[..., Deployment], iam: LocalIssuer) -> None:
    deployment = deploy()
    service = iam.service_token()
    user = iam.token("u-m")
    assert (
        deployment.client.post(
            "/api/v1/objects", json={"@type": "ObjectType", "name": "m1"}, headers=bearer(service)
        ).status_code
        == 201
    )
    assert (
        deployment.client.post(
            "/api/v1/objects", json={"@type": "ObjectType", "name": "m2"}, headers=bearer(user)
        ).status_code
        == 201
    )
    assert deployment.client.post("/api/v1/objects", json={"@type": "ObjectType", "name": "m3"}).status_code == 401
    text = deployment.client.get("/metrics").text
    assert (
        _metric(text, "oms_audit_events_total", {"action": "create", "resource_type": "ObjectType", "success": "true"})
        == 2
    )
    assert (
        _metric(text, "oms_service_account_operations_total", {"service_name": "deployment", "operation": "create"})
        == 1
    )
    assert _metric(text, "oms_audit_events_total", {"action": "write_denied", "success": "false"}) == 1


def _freeze(deployment: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; raise SystemExit(main())", "freeze", *args],
        cwd=ROOT,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_for_status(client: httpx.Client, status: int, request: Callable[[], httpx.Response]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        reply = request()
        if reply.status_code == status or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def test_write_freeze_refuses_writes_and_keeps_reads(deploy: Callable[..., Deployment], iam: LocalIssuer) -> None:
    deployment = deploy()
    token = iam.token()
    client = deployment.client
    assert (
        client.post(
            "/api/v1/objects", json={"@type": "ObjectType", "name": "before"}, headers=bearer(token)
        ).status_code
        == 201
    )

    frozen = _freeze(deployment, "on", "--reason", "rollback of the audit fields")
    assert frozen.returncode == 0, frozen.stderr
    assert "FROZEN" in frozen.stdout
    counter = iter(range(1000))

    def write() -> httpx.Response:
        body = {"@type": "ObjectType", "name": f"during-{next(counter)}"}
        return client.post("/api/v1/objects", json=body, headers=bearer(token))

    refused = _wait_for_status(client, 503, write)
    assert refused.status_code == 503
    assert refused.json()["error"] == "writes_frozen"
    assert "rollback of the audit fields" in refused.json()["message"]
    assert refused.headers["Retry-After"]
    assert client.get("/api/v1/objects/ObjectType/before", headers=bearer(token)).status_code == 200
    status = _freeze(deployment, "status", "--json")
    assert json.loads(status.stdout)["frozen"] is True

    assert _freeze(deployment, "off").returncode == 0
    accepted = _wait_for_status(client, 201, write)
    assert accepted.status_code == 201
    assert json.loads(_freeze(deployment, "status", "--json").stdout)["frozen"] is False


def test_oms_audit_serve_command(deploy: Callable[..., Deployment], iam: LocalIssuer) -> None:
    deployment = deploy(command=[sys.executable, "-c", "from cli.main import main; raise SystemExit(main())", "serve"])
    reply = deployment.client.get("/api/v1/iam/verify-service-account", headers=bearer(iam.service_token()))
    assert reply.status_code == 200
    assert reply.json()["principal"]["id"] == "svc_deployment"
    # SIGTERM: uvicorn finishes in-flight requests and the emitter's queue, then re-raises the signal
    assert deployment.service.stop() in (0, -15)
    assert "Application shutdown complete" in deployment.service.log()


def test_readme_body_fits_the_demo_ontology(deploy: Callable[..., Deployment], iam: LocalIssuer) -> None:
    from core.audit_fields import AUDIT_FIELDS, audit_field_range
    from sandbox.demo_seed import demo_schema

    schema = [
        {**doc, **{f: audit_field_range(f) for f in AUDIT_FIELDS}} if doc.get("@id") == "OntologyResource" else doc
        for doc in demo_schema()
    ]
    readme = (ROOT / "README.md").read_text()
    body = json.loads(
        readme.split("the demo ontology's ObjectType needs more fields:", 1)[1].split("-d '", 1)[1].split("'", 1)[0]
    )
    deployment = deploy(schema=schema)
    reply = deployment.client.post("/api/v1/objects", json=body, headers=bearer(iam.token("u-readme", username="rita")))
    assert reply.status_code == 201, reply.text
    assert reply.json()["_created_by"] == "u-readme"
