"""Operating the project from Prefect as a user does: ``prefect --no-prompt deploy --all`` from the repo's
``prefect.yaml`` onto a process work pool, one process worker, the migration triggered through the API,
its plan read from the artifact, approvals (plain, rejected, verified with the local IAM issuer, refused)
given through the API and ``oms-audit approve``, the nightly sweep's schedule and a manual sweep; then the
same approval in a real browser on the server's UI (tests/deployments/test_browser.py).

One Prefect server (package fixture), one worker and one sandbox TerminusDB for the whole module; every
migration run gets its own freshly seeded database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run
from prefect.input import keyset_from_paused_state

from core.settings import TerminusSettings, load_settings
from core.terminus import TerminusGateway
from deployments.catalog import DLQ_SWEEP, MIGRATION, WORK_POOL
from sandbox.demo_seed import demo_documents, demo_schema
from sandbox.server import SandboxServer
from tests.deployments.conftest import PREFECT, ROOT, PrefectServer
from tests.deployments.processes import BackgroundProcess, wait_for
from tests.iam_issuer import LocalIssuer

RUN_SECONDS = 240
TRIGGER = "e2e-trigger"
AUDIT_FIELDS = {"_created_by", "_created_by_username", "_created_at", "_updated_by", "_updated_by_username"}


def run_cli(server: PrefectServer, *args: str, **env: str) -> str:
    done = subprocess.run(
        [PREFECT, *args], cwd=ROOT, env=server.client_env(**env), capture_output=True, text=True, timeout=RUN_SECONDS
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@dataclass
class Operation:
    """The deployed project: server, worker, sandbox, where reports and the worker's log go."""

    server: PrefectServer
    worker: BackgroundProcess
    sandbox: SandboxServer
    reports_dir: Path
    dlq_dir: Path
    meta_database: str
    iam: LocalIssuer

    def new_database(self) -> str:
        """A database seeded with the demo ontology (unpatched)."""
        name = f"op_{uuid.uuid4().hex[:8]}"
        reply = httpx.post(f"{self.sandbox.url}/api/db/admin/{name}", json={"label": name}, auth=("admin", "root"))
        assert reply.status_code == 200, reply.text
        settings = load_settings(TerminusSettings, url=self.sandbox.url)
        with TerminusGateway(settings, database=name) as gateway:
            gateway.insert_documents(demo_schema(), author="test", message="seed schema", graph_type="schema")
            gateway.insert_documents(demo_documents(), author="test", message="seed documents")
        return name

    def trigger(self, database: str, **parameters: Any) -> FlowRun:
        values = {"database": database, "approval_poll_seconds": 1, "triggered_by": TRIGGER, **parameters}
        with get_client(sync_client=True) as client:  # sync: the browser tests run inside Playwright's loop
            deployment = client.read_deployment_by_name(MIGRATION.full_name)
            return client.create_flow_run_from_deployment(deployment.id, parameters=values)

    def wait_paused(self, flow_run_id: uuid.UUID, *, after_key: str | None = None) -> FlowRun:
        def probe() -> FlowRun | None:
            run = read_run(flow_run_id)
            assert run.state is not None
            assert not run.state.is_final(), (
                f"run ended {run.state!r} while waiting for a pause\n{self.worker.report()}"
            )
            if not run.state.is_paused():
                return None
            return run if after_key is None or keyset_from_paused_state(run.state)["response"] != after_key else None

        return wait_for(f"run {flow_run_id} to pause", probe, timeout=RUN_SECONDS, watch=[self.worker])

    def wait_final(self, flow_run_id: uuid.UUID) -> FlowRun:
        def probe() -> FlowRun | None:
            run = read_run(flow_run_id)
            return run if run.state is not None and run.state.is_final() else None

        return wait_for(f"run {flow_run_id} to end", probe, timeout=RUN_SECONDS, watch=[self.worker])

    def report_of(self, flow_run_id: uuid.UUID) -> dict[str, Any]:
        for path in sorted(self.reports_dir.glob("migration_report_audit_fields_*.json")):
            report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            if report.get("run_id") == str(flow_run_id):
                return report
        raise AssertionError(f"no report of run {flow_run_id} in {self.reports_dir}")


def read_run(flow_run_id: uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def artifacts_of(flow_run_id: uuid.UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def logs_of(flow_run_id: uuid.UUID) -> str:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def schema_class(sandbox: SandboxServer, database: str, name: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{sandbox.url}/api/document/admin/{database}",
        params={"graph_type": "schema", "as_list": "true"},
        auth=("admin", "root"),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    [found] = [doc for doc in reply.json() if doc.get("@id") == name]
    return dict(found)


def answer(flow_run_id: uuid.UUID, **values: Any) -> str:
    """Resume the run through the API as the UI does; returns the key of the pause that was answered."""
    run = read_run(flow_run_id)
    assert run.state is not None
    key = keyset_from_paused_state(run.state)["response"]
    resume_flow_run(flow_run_id, run_input=values)
    return key


def short_plan(flow_run_id: uuid.UUID) -> str:
    from prefect.settings import PREFECT_API_URL

    reply = httpx.get(f"{PREFECT_API_URL.value()}/flow_runs/{flow_run_id}/input/approval-plan", timeout=30)
    assert reply.status_code == 200, reply.text
    value = json.loads(reply.text)
    assert isinstance(value, str) and len(value) == 8
    return value


def oms_audit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("oms-audit")), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )


@pytest.fixture(scope="module")
def operation(
    prefect_server: PrefectServer, iam_server: LocalIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operation]:
    base = tmp_path_factory.mktemp("operate")
    run_cli(prefect_server, "work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    run_cli(prefect_server, "block", "register", "-m", "blocks")
    run_cli(prefect_server, "--no-prompt", "deploy", "--all")
    with SandboxServer() as sandbox:
        meta = f"meta_{uuid.uuid4().hex[:8]}"
        env = prefect_server.client_env(
            TERMINUS_DB_URL=sandbox.url,
            OMS_AUDIT_REPORTS_DIR=str(base / "reports"),
            OMS_AUDIT_META_DB=meta,
            OMS_AUDIT_DLQ_DIR=str(base / "dlq"),
            IAM_JWKS_URL=iam_server.jwks_url,
            IAM_ISSUER=iam_server.issuer,
            IAM_AUDIENCE=iam_server.audience,
            OMS_AUDIT_FOUR_EYES="true",
            PREFECT_WORKER_QUERY_SECONDS="2",
        )
        (base / "dlq").mkdir()
        command = [PREFECT, "worker", "start", "--pool", WORK_POOL, "--type", "process"]
        worker = BackgroundProcess.start("worker", command, env=env, cwd=base, log_dir=base)
        try:
            yield Operation(prefect_server, worker, sandbox, base / "reports", base / "dlq", meta, iam_server)
        finally:
            worker.stop()
            if worker.popen.poll() is None:
                worker.popen.kill()


def test_deploy_all_gives_three_deployments_and_the_nightly_sweep_schedule(operation: Operation) -> None:
    with get_client(sync_client=True) as client:
        sweep = client.read_deployment_by_name(DLQ_SWEEP.full_name)
        migration = client.read_deployment_by_name(MIGRATION.full_name)
    [schedule] = sweep.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "UTC")  # type: ignore[union-attr]
    assert schedule.active
    assert migration.schedules == [] and migration.parameters == {"env": "production", "dry_run": True}
    assert migration.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]


def test_manual_sweep_run_completes(operation: Operation) -> None:
    run = run_deployment(name=DLQ_SWEEP.full_name, parameters={}, timeout=0, poll_interval=1)
    final = operation.wait_final(run.id)
    assert final.state is not None and final.state.is_completed(), f"{final.state!r}\n{operation.worker.report()}"
    assert "dlq-sweep-summary" in artifacts_of(run.id)


def test_rejected_run_is_cancelled_and_changes_nothing(operation: Operation) -> None:
    database = operation.new_database()
    run = operation.trigger(database, dry_run=False)
    paused = operation.wait_paused(run.id)
    assert paused.name == f"audit-fields-{database}-execute-{short_plan(run.id)}"
    answer(run.id, decision="reject", plan=short_plan(run.id), approver="carol", comment="not now")
    final = operation.wait_final(run.id)
    assert final.state is not None and final.state.is_cancelled(), repr(final.state)
    assert "Rejected by carol: not now" in (final.state.message or "")
    assert "_created_by" not in schema_class(operation.sandbox, database, "OntologyResource")
    assert operation.report_of(run.id)["status"] == "rejected"


def test_verified_approval_end_to_end(operation: Operation, tmp_path: Path) -> None:
    """Plan artifact read through the API; refused answers leave the run paused; a token with
    schema:approve given through ``oms-audit approve`` completes it, recorded as verified; the token is
    nowhere afterwards."""
    iam = operation.iam
    database = operation.new_database()
    run = operation.trigger(database, dry_run=False)
    paused = operation.wait_paused(run.id)
    fingerprint = short_plan(run.id)

    artifacts = artifacts_of(run.id)
    plan = artifacts[f"audit-fields-plan-{database.replace('_', '-')}"]
    assert "OntologyResource" in str(plan.data) and "**patch**" in str(plan.data)
    assert all(key for key in artifacts), "every artifact is keyed"

    refused_tokens = {
        "no role": iam.token("u-7", username="mallory", roles=["user"]),
        "expired": iam.token("u-8", username="eve", roles=["schema:approve"], expires_in=-600),
        "wrong audience": iam.token("u-9", username="trent", roles=["schema:approve"], audience="someone-else"),
    }
    key = keyset_from_paused_state(paused.state)["response"]  # type: ignore[arg-type]
    for what, token in refused_tokens.items():
        key = answer(run.id, decision="approve", plan=fingerprint, approver="x", approval_token=token)
        paused = operation.wait_paused(run.id, after_key=key)
        assert paused.state is not None and paused.state.is_paused(), what
    # four eyes: the person who triggered the run may not approve it
    key = answer(run.id, decision="approve", plan=fingerprint, approver=TRIGGER)
    operation.wait_paused(run.id, after_key=key)

    good = iam.token("u-42", username="alice", roles=["schema:approve"])
    token_file = tmp_path / "token"
    token_file.write_text(good + "\n", encoding="utf-8")
    done = oms_audit(
        "approve", str(run.id), "--token-file", str(token_file), "--comment", "ok", env=operation.server.client_env()
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert good not in done.stdout + done.stderr
    final = operation.wait_final(run.id)
    assert final.state is not None and final.state.is_completed(), f"{final.state!r}\n{operation.worker.report()}"
    assert set(schema_class(operation.sandbox, database, "OntologyResource")) >= AUDIT_FIELDS

    report = operation.report_of(run.id)
    approval = report["approval"]
    assert (approval["approver"], approval["approver_id"], approval["verified"]) == ("alice", "u-42", True)
    assert approval["via"] == "oms-audit approve"
    reasons = "\n".join(approval["refused"])
    assert "lacks role schema:approve" in reasons
    assert reasons.count("approval token was not accepted") == 2  # expired, wrong audience
    assert "four eyes" in reasons

    from core.metadata_db import metadata_gateway
    from core.run_history import get_run

    settings = load_settings(TerminusSettings, url=operation.sandbox.url, meta_database=operation.meta_database)
    with metadata_gateway(settings) as meta:
        record = get_run(meta, str(run.id))
    assert record is not None and record.approved_by == "alice (verified: u-42)"

    # no token anywhere: the Prefect database's contents, the report, the run's logs, the worker's output
    with sqlite3.connect(operation.server.database) as db:
        dump = "\n".join(db.iterdump())
    texts = {
        "Prefect database": dump,
        "report": json.dumps(report),
        "logs": logs_of(run.id),
        "worker": operation.worker.output(limit=10**7),
    }
    for token in [good, *refused_tokens.values()]:
        for where, text in texts.items():
            assert token not in text, f"a token is in the {where}"
            assert token.split(".")[2] not in text, f"a token's signature is in the {where}"
    assert "verified as alice" in dump  # the stored answer holds the verdict instead


# ------------------------------------------------------------------------------------------------------
# the same approval in a real browser on the server's UI

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CLIPPED_JS = """(element) => {
    // an ancestor that scrolls or hides overflow and is smaller than its content clips what it holds
    for (let node = element.parentElement; node; node = node.parentElement) {
        const style = getComputedStyle(node);
        const clips = ['auto', 'scroll', 'hidden'].includes(style.overflowY) ||
                      ['auto', 'scroll', 'hidden'].includes(style.overflowX);
        if (clips && (node.scrollHeight > node.clientHeight + 2 || node.scrollWidth > node.clientWidth + 2)) {
            const box = node.getBoundingClientRect(), mine = element.getBoundingClientRect();
            if (mine.top < box.top || mine.bottom > box.bottom || mine.right > box.right) return node.className;
        }
    }
    return null;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    import shutil

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def resume_in_browser(
    browser: Any, operation: Operation, flow_run_id: uuid.UUID, name: str, fill: Callable[[Any, str], None]
) -> None:
    """Open the run in the UI, open the resume dialog, check what the approver must see, answer with ``fill``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    fingerprint = short_plan(flow_run_id)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{operation.server.ui_url}/v2/runs/flow-run/{flow_run_id}", wait_until="networkidle")
        try:
            page.get_by_role("button", name="Open menu").first.click(timeout=30_000)
            page.get_by_role("menuitem", name="Resume").click(timeout=10_000)
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / f"{name}-no-resume.png"), full_page=True)
            raise
        dialog = page.get_by_role("dialog")
        question = dialog.get_by_text("Add the six audit fields to", exact=False).first
        short = dialog.get_by_text(fingerprint, exact=True).first
        question.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-dialog.png"), full_page=False)
        for what, locator in (("the question", question), ("the short fingerprint", short)):
            assert locator.is_visible(), f"{what} is not visible in the resume dialog"
            clipper = locator.evaluate(CLIPPED_JS)
            assert clipper is None, f"{what} sits in a clipped scroll box ({clipper})"
            box = locator.bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900, f"{what} is off screen"
        fill(dialog, fingerprint)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-filled.png"), full_page=False)
        dialog.get_by_role("button", name="Resume").click()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-answered.png"), full_page=False)
    finally:
        page.close()


def choose(dialog: Any, decision: str) -> None:
    dialog.get_by_text("Select", exact=False).first.click()
    dialog.page.get_by_role("option", name=decision).click()


def fill_answer(decision: str, approver: str, comment: str) -> Callable[[Any, str], None]:
    def fill(dialog: Any, fingerprint: str) -> None:
        choose(dialog, decision)
        boxes = dialog.get_by_role("textbox")
        boxes.nth(0).fill(fingerprint)  # Plan fingerprint
        boxes.nth(1).fill(approver)  # Your name
        boxes.nth(2).fill(comment)  # Comment

    return fill


def test_browser_approval_completes_the_run(browser: Any, operation: Operation) -> None:
    database = operation.new_database()
    run = operation.trigger(database, dry_run=False, triggered_by="someone-else")
    operation.wait_paused(run.id)
    resume_in_browser(browser, operation, run.id, "approve", fill_answer("approve", "browser-approver", "ok"))
    final = operation.wait_final(run.id)
    assert final.state is not None and final.state.is_completed(), f"{final.state!r}\n{operation.worker.report()}"
    approval = operation.report_of(run.id)["approval"]
    assert (approval["approver"], approval["via"], approval["verified"]) == ("browser-approver", "prefect-ui", False)
    assert set(schema_class(operation.sandbox, database, "OntologyResource")) >= AUDIT_FIELDS


def test_browser_rejection_cancels_the_run(browser: Any, operation: Operation) -> None:
    database = operation.new_database()
    run = operation.trigger(database, dry_run=False)
    operation.wait_paused(run.id)
    resume_in_browser(browser, operation, run.id, "reject", fill_answer("reject", "browser-approver", "no"))
    final = operation.wait_final(run.id)
    assert final.state is not None and final.state.is_cancelled(), repr(final.state)
    assert "_created_by" not in schema_class(operation.sandbox, database, "OntologyResource")
