"""Orchestration tax: the audit-fields flow against a plain script making the same TerminusDB calls.

Both run on identical sandbox databases of ``TYPES`` independent document classes (every one is patched) with
``DOCS_PER_TYPE`` documents each. The plain script does the flow's ontology-database work in one process,
through one gateway, with the same core functions: consistent schema read (snapshot), analysis, plan with the
timed dry-run call, re-analysis after approval, per type a schema read and one migration call, validation,
the head commit after. The flow additionally pays for Prefect (flow run, one task run per step and per type,
artifacts), the JSON report, the run history in the metadata database and the migration lease.

Timing of the flow: the flow run's own ``start_time`` .. ``end_time`` (Prefect API), minus the approval pause.
The pause is answered at once (``approval_poll_seconds=1``) and measured exactly: from the timestamp of the
run's Paused state to the ``approval.decided_at`` the flow writes into its report right after the pause
returns. Startup of the Prefect API and a first, small warm-up run are not timed.

Run: ``uv run python bench/bench_orchestration.py`` (``--repeats N``, ``--types N``, ``--profile`` for a
cProfile of one flow run). Prints markdown tables.
"""

from __future__ import annotations

import os
import tempfile

# Before Prefect is imported: a throwaway Prefect home, no telemetry, quiet logs.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="oms-audit-bench-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"

import argparse
import cProfile
import io
import itertools
import pstats
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, tags, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.testing.utilities import prefect_test_harness

from blocks.environment import resolve_terminus
from cli.flow_runner import run_flow
from core.audit_validation import validate_migration
from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.migration_plan import build_plan
from core.migration_report import MigrationReport, save_report
from core.run_history import MigrationRunRecord, record_run
from core.schema_analysis import analyze_schema
from core.settings import TerminusSettings, load_settings
from core.terminus import TerminusGateway
from flows.audit_fields_migration import audit_fields_migration
from sandbox.server import SandboxServer
from tasks.patching import patch_with
from tasks.schema_tasks import read_consistent_schema

TYPES = 200
DOCS_PER_TYPE = 10
REPEATS = 3
GOAL_MS_PER_TYPE = 25.0
ENV = "bench"
AUTHOR = "svc_deployment"
META_DB = "oms_audit_bench"


# ---------------------------------------------------------------------------------------------------------
# data


def generate_schema(types: int) -> list[dict[str, Any]]:
    """``types`` independent document classes (no common parent, so each one is patched)."""
    return [
        {
            "@type": "Class",
            "@id": f"Type{index:04d}",
            "@key": {"@type": "Lexical", "@fields": ["code"]},
            "code": "xsd:string",
            "label": {"@type": "Optional", "@class": "xsd:string"},
            "size": {"@type": "Optional", "@class": "xsd:integer"},
        }
        for index in range(types)
    ]


def generate_documents(types: int, per_type: int) -> list[dict[str, Any]]:
    return [
        {"@type": f"Type{index:04d}", "code": f"c{index}-{n}", "label": f"item {n}", "size": n}
        for index in range(types)
        for n in range(per_type)
    ]


def seed_database(settings: TerminusSettings, database: str, types: int) -> None:
    with TerminusGateway(settings, database=database) as gateway:
        gateway.create_database(database)
        gateway.insert_documents(generate_schema(types), author="bench", message="seed", graph_type="schema")
        gateway.insert_documents(generate_documents(types, DOCS_PER_TYPE), author="bench", message="seed")


# ---------------------------------------------------------------------------------------------------------
# (a) the plain script


@dataclass
class PlainTiming:
    total: float
    patching: float
    per_type: list[float]  # seconds of each patch, in order


def plain_migration(settings: TerminusSettings, database: str, run_id: str) -> PlainTiming:
    """The flow's calls on the ontology database, in order, with no orchestration and no bookkeeping."""
    message = f"oms-audit: add audit fields (run {run_id})"
    started = time.perf_counter()
    with TerminusGateway(settings, database=database) as gateway:
        read_consistent_schema(gateway)  # snapshot
        head, schema = read_consistent_schema(gateway)  # analysis
        analysis = analyze_schema(schema, gateway.document_counts(), head_commit=head)
        draft = build_plan(analysis, database=database, branch=gateway.branch)
        sample = draft.operations[0]
        timer = time.perf_counter()
        gateway.migrate(sample.to_operations(), author="oms-audit", message="timing dry run", dry_run=True)
        plan = build_plan(
            analysis, database=database, branch=gateway.branch, seconds_per_call=time.perf_counter() - timer
        )
        head, schema = read_consistent_schema(gateway)  # re-analysis after the approval
        current = build_plan(
            analyze_schema(schema, gateway.document_counts(), head_commit=head),
            database=database,
            branch=gateway.branch,
        )
        assert current.fingerprint == plan.fingerprint
        patch_start = time.perf_counter()
        per_type = []
        for operation in plan.operations:
            one = time.perf_counter()
            patch_with(gateway, operation, author=AUTHOR, message=message)
            per_type.append(time.perf_counter() - one)
        patching = time.perf_counter() - patch_start
        validation = validate_migration(gateway, analysis, service_account=AUTHOR, run_id=run_id)
        assert validation.ok, validation
        gateway.head_commit()
    return PlainTiming(total=time.perf_counter() - started, patching=patching, per_type=per_type)


# ---------------------------------------------------------------------------------------------------------
# (b) the flow


@dataclass
class FlowTiming:
    run_seconds: float  # flow run start_time .. end_time, pause excluded
    call_seconds: float  # the in-process call (flow-run creation and teardown included), pause excluded
    pause: float
    patching: float  # first patch task start .. last patch task end
    patch_tasks: list[float]  # each patch task run, start .. end, in order
    between_patches: list[float]  # previous task run's end .. next patch task run's start (loop bookkeeping)
    types: int


def approve(description: str) -> dict[str, Any]:
    return {"decision": "approve", "approver": "bench", "comment": "", "via": "bench"}


def _task_runs(flow_run_id: UUID, expected: int) -> list[TaskRun]:
    """The run's task runs once all have arrived (the API records task states asynchronously)."""
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs: list[TaskRun] = []
            while True:  # the API answers at most 200 per call
                page = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), offset=len(runs), limit=200
                )
                runs += page
                if len(page) < 200:
                    break
            finished = [run for run in runs if run.start_time is not None and run.end_time is not None]
            if len(finished) >= expected or time.monotonic() > deadline:
                return sorted(finished, key=lambda run: run.start_time or datetime.min.replace(tzinfo=UTC))
            time.sleep(0.5)


def flow_migration(
    database: str, reports_dir: Path, types: int, *, profile: cProfile.Profile | None = None
) -> FlowTiming:
    parameters = {
        "env": ENV,
        "dry_run": False,
        "database": database,
        "approval_poll_seconds": 1,
        "reports_dir": str(reports_dir),
        "service_account": AUTHOR,
        "triggered_by": "bench",
    }

    flow_to_run = audit_fields_migration
    if profile is not None:  # hooks run in the flow's thread, which is the one to profile
        flow_to_run = audit_fields_migration.with_options(
            on_running=[lambda *_: profile.enable()], on_completion=[lambda *_: profile.disable()]
        )

    started = time.perf_counter()
    outcome = run_flow(flow_to_run, parameters, answer=approve, poll_seconds=0.1)
    call_seconds = time.perf_counter() - started
    result = outcome.state.result()
    assert isinstance(result, dict) and result["status"] == "succeeded", result
    assert outcome.flow_run_id is not None
    report = MigrationReport.model_validate_json(Path(result["report_path"]).read_text(encoding="utf-8"))
    assert report.approval.decided_at is not None
    decided_at = report.approval.decided_at

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(outcome.flow_run_id)
        states = client.read_flow_run_states(outcome.flow_run_id)
    paused_at = min(state.timestamp for state in states if state.is_paused())
    pause = (decided_at - paused_at).total_seconds()
    assert run.start_time is not None and run.end_time is not None
    run_seconds = (run.end_time - run.start_time).total_seconds() - pause

    # snapshot, analyze, plan, analyze again, one patch per type, validate
    task_runs = _task_runs(outcome.flow_run_id, expected=types + 5)
    patches = [t for t in task_runs if t.name.startswith("patch-")]
    assert len(patches) == types, f"expected {types} patch task runs, found {len(patches)}"
    gaps = [
        (later.start_time - earlier.end_time).total_seconds()  # type: ignore[operator]
        for earlier, later in itertools.pairwise(task_runs)
        if later.name.startswith("patch-")
    ]
    first, last = patches[0], patches[-1]
    assert first.start_time is not None and last.end_time is not None
    return FlowTiming(
        run_seconds=run_seconds,
        call_seconds=call_seconds - pause,
        pause=pause,
        patching=(last.end_time - first.start_time).total_seconds(),
        patch_tasks=[(t.end_time - t.start_time).total_seconds() for t in patches],  # type: ignore[operator]
        between_patches=gaps,
        types=types,
    )


# ---------------------------------------------------------------------------------------------------------
# where the per-type cost goes: each piece the flow's loop pays per type, timed alone


@task(name="noop", cache_policy=NO_CACHE)
def noop_task(index: int) -> int:
    return index


@flow(name="bench-empty-tasks")
def empty_tasks_flow(count: int) -> float:
    """Seconds per call of a task that does nothing, inside a flow (the flow run's own cost excluded)."""
    started = time.perf_counter()
    for index in range(count):
        noop_task(index)
    return (time.perf_counter() - started) / count


@flow(name="bench-progress-updates")
def progress_updates_flow(count: int) -> float:
    """Seconds per update of a progress artifact, inside a flow run as in the migration."""
    artifact = create_progress_artifact(progress=0.0, description="bench")
    return _per_call(
        lambda: update_progress_artifact(artifact_id=artifact, progress=50.0, description="bench"),  # type: ignore[arg-type]
        count,
    )


def _per_call(action: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - started) / count


def per_type_pieces(
    settings: TerminusSettings, database: str, reports_dir: Path, types: int, count: int = 50
) -> dict[str, float]:
    """Seconds per call of each per-type piece, measured outside the flow on the flow's own finished run."""
    report_file = max(reports_dir.glob("migration_report_audit_fields_*.json"))
    report = MigrationReport.model_validate_json(report_file.read_text(encoding="utf-8"))
    pieces: dict[str, float] = {}
    scratch = reports_dir / "scratch.json"
    pieces["save the JSON report (whole run, all types)"] = _per_call(lambda: save_report(report, scratch), count)

    record = MigrationRunRecord(
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        database=database,
        branch="main",
        mode="execute",
        status="running",
        triggered_by="bench",
        fingerprint="x",
        type_states={f"Type{i:04d}": "applied" for i in range(types)},
        started_at=datetime.now(UTC),
    )

    def history_write() -> None:
        with metadata_gateway(settings) as gateway:
            record_run(gateway, record)

    pieces["write the history record (new metadata gateway)"] = _per_call(history_write, count)

    def fresh_gateway_schema() -> None:
        with TerminusGateway(settings, database=database) as gateway:
            gateway.schema()

    with TerminusGateway(settings, database=database) as shared:
        shared.schema()
        pieces["schema read, shared gateway"] = _per_call(shared.schema, count)
    pieces["schema read, new gateway (connect + read)"] = _per_call(fresh_gateway_schema, count)

    pieces["update the progress artifact"] = progress_updates_flow(count)

    pieces["one Prefect task run that does nothing"] = empty_tasks_flow(types)
    with tags("bench-run-tag"):  # run_flow tags its runs to find them; task runs inherit the tag
        pieces["one Prefect task run that does nothing, run tagged as run_flow does"] = empty_tasks_flow(types)
    return pieces


# ---------------------------------------------------------------------------------------------------------


@contextmanager
def environment(server: SandboxServer, root: Path) -> Iterator[TerminusSettings]:
    values = {
        "TERMINUS_DB_URL": server.url,
        "TERMINUS_DB_TEAM": "admin",
        "TERMINUS_DB_USER": "admin",
        "TERMINUS_DB_PASSWORD": "root",
        "OMS_AUDIT_META_DB": META_DB,
        "OMS_AUDIT_REPORTS_DIR": str(root / "reports"),
        "OMS_AUDIT_DLQ_DIR": str(root / "dlq"),
        "OMS_AUDIT_SERVICE_ACCOUNT": AUTHOR,
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    resolve_terminus.cache_clear()
    try:
        yield load_settings(TerminusSettings)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        resolve_terminus.cache_clear()


@dataclass
class Round:
    plain: PlainTiming
    flow: FlowTiming
    flow_database: str
    reports_dir: Path


def run_round(
    settings: TerminusSettings, root: Path, index: int, types: int, profile: cProfile.Profile | None
) -> Round:
    tag = uuid.uuid4().hex[:6]
    plain_db, flow_db = f"bench_plain_{tag}", f"bench_flow_{tag}"
    seed_database(settings, plain_db, types)
    seed_database(settings, flow_db, types)
    plain = plain_migration(settings, plain_db, run_id=f"plain-{tag}")
    reports_dir = root / f"reports-{index}"
    flow_timing = flow_migration(flow_db, reports_dir, types, profile=profile)
    with TerminusGateway(settings) as gateway:
        gateway.delete_database(plain_db)
    return Round(plain=plain, flow=flow_timing, flow_database=flow_db, reports_dir=reports_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--types", type=int, default=TYPES)
    parser.add_argument("--profile", action="store_true", help="cProfile the last flow run (flow thread)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="oms-audit-bench-"))
    try:
        with (
            prefect_test_harness(server_startup_timeout=90),
            SandboxServer() as server,
            environment(server, root) as settings,
        ):
            with metadata_gateway(settings) as gateway:
                ensure_metadata_db(gateway, settings)
            run_round(settings, root, -1, 5, None)  # warm-up: imports, first API calls, block lookup
            profile = cProfile.Profile() if args.profile else None
            rounds = [
                run_round(settings, root, index, args.types, profile if index == args.repeats - 1 else None)
                for index in range(args.repeats)
            ]
            pieces = per_type_pieces(settings, rounds[-1].flow_database, rounds[-1].reports_dir, args.types)
            print_results(rounds, pieces, args.types)
            time.sleep(3)  # let the API record the last task runs before it stops (else: teardown tracebacks)
            if profile is not None:
                print_profile(profile)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def print_results(rounds: list[Round], pieces: dict[str, float], types: int) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    plain = med([r.plain.total for r in rounds])
    flow_run = med([r.flow.run_seconds for r in rounds])
    flow_call = med([r.flow.call_seconds for r in rounds])
    added = [(r.flow.run_seconds - r.plain.total) * 1000 / types for r in rounds]
    print(f"{types} patched types, {DOCS_PER_TYPE} documents each; {len(rounds)} runs, medians\n")
    print("| plain script (s) | flow (s) | ratio | added per type (ms) | goal |")
    print("|---:|---:|---:|---:|---|")
    print(
        f"| {plain:.2f} | {flow_run:.2f} | {flow_run / plain:.2f} | {med(added):.1f} "
        f"| {'met' if med(added) <= GOAL_MS_PER_TYPE else 'NOT MET'} (<= {GOAL_MS_PER_TYPE:g} ms) |"
    )
    print()
    print("| run | plain (s) | flow run (s) | flow call (s) | pause excluded (s) | added/type (ms) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for number, r in enumerate(rounds, start=1):
        print(
            f"| {number} | {r.plain.total:.2f} | {r.flow.run_seconds:.2f} | {r.flow.call_seconds:.2f} "
            f"| {r.flow.pause:.2f} | {(r.flow.run_seconds - r.plain.total) * 1000 / types:.1f} |"
        )
    print()
    plain_patch = med([r.plain.patching for r in rounds])
    flow_patch = med([r.flow.patching for r in rounds])
    print("| patch loop | plain | flow |")
    print("|---|---:|---:|")
    print(f"| whole loop (s) | {plain_patch:.2f} | {flow_patch:.2f} |")
    print(f"| per type (ms) | {plain_patch * 1000 / types:.1f} | {flow_patch * 1000 / types:.1f} |")
    tenth = max(1, types // 10)

    def spread(series: list[list[float]]) -> str:
        """mean | mean of the first tenth | mean of the last tenth, in ms (median over the runs)."""
        parts = [
            med([statistics.fmean(values) for values in series]),
            med([statistics.fmean(values[:tenth]) for values in series]),
            med([statistics.fmean(values[-tenth:]) for values in series]),
        ]
        return " | ".join(f"{part * 1000:.1f}" for part in parts)

    print("\n| per type (ms) | mean | first tenth | last tenth |")
    print("|---|---:|---:|---:|")
    print(f"| plain: schema read + migration call | {spread([r.plain.per_type for r in rounds])} |")
    print(f"| flow: patch task run, start to end | {spread([r.flow.patch_tasks for r in rounds])} |")
    print(f"| flow: between two patch task runs | {spread([r.flow.between_patches for r in rounds])} |")
    print(f"\nflow call incl. flow-run creation/teardown, pause excluded: {flow_call:.2f} s (median)\n")
    print("| per-type piece, timed alone | ms per call |")
    print("|---|---:|")
    for label, seconds in pieces.items():
        print(f"| {label} | {seconds * 1000:.1f} |")


def print_profile(profile: cProfile.Profile) -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(40)
    print(out.getvalue())


if __name__ == "__main__":
    main()
