"""Read-only steps of the audit-fields migration: snapshot, analysis, plan, and the drift check."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from core.errors import PermissionDenied, PlanRaced, TerminusError, TerminusServerError
from core.metadata_db import metadata_gateway
from core.migration_commits import commits_since, run_of
from core.migration_lease import read_lease
from core.migration_plan import MigrationPlan, build_plan, check_drift
from core.schema_analysis import SchemaAnalysis, analyze_schema
from core.schema_snapshot import SchemaSnapshot, take
from core.terminus import TerminusGateway

from .terminus_target import TRANSIENT_RETRIES, Target, open_gateway, target_settings


def read_consistent_schema(gateway: TerminusGateway) -> tuple[str, list[dict[str, Any]]]:
    """Head commit and schema read as one: re-read when a commit landed between the two requests."""
    for _ in range(5):
        head = gateway.head_commit()
        schema = gateway.schema()
        if gateway.head_commit() == head:
            return head, schema
    return gateway.head_commit(), gateway.schema()


@task(name="snapshot", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def snapshot_schema(target: Target, reports_dir: str, run_id: str) -> tuple[str, str]:
    """Save the whole schema graph and the head commit beside the reports; returns (path, head commit)."""
    with open_gateway(target) as gateway:
        head, schema = read_consistent_schema(gateway)
    snapshot: SchemaSnapshot = take(target.database, target.branch, head, schema)
    path = snapshot.save(Path(reports_dir), run_id)
    from tasks.artifacts import artifact_key

    create_markdown_artifact(
        markdown=(
            f"Schema snapshot of `{target.describe()}` at commit `{head}`: {len(schema)} schema documents, "
            f"saved on the worker as `{path}` (the rollback starts from it)."
        ),
        key=artifact_key("audit-fields-snapshot", target.database),
        description=f"Schema snapshot of {target.describe()} at commit {head}",
    )
    return str(path), head


def _analyze(gateway: TerminusGateway, include: list[str], exclude: list[str]) -> tuple[SchemaAnalysis, list[Any]]:
    head, schema = read_consistent_schema(gateway)
    counts = gateway.document_counts()
    return analyze_schema(schema, counts, head_commit=head, include=include, exclude=exclude), schema


@task(name="analyze", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def analyze_target(target: Target, include: list[str], exclude: list[str]) -> SchemaAnalysis:
    """Classify every schema document and count the documents of each type."""
    with open_gateway(target) as gateway:
        return _analyze(gateway, include, exclude)[0]


@task(name="plan", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def plan_migration(target: Target, analysis: SchemaAnalysis) -> tuple[MigrationPlan, PermissionDenied | None]:
    """Build the plan and time one dry-run migration call, so the duration estimate rests on a measurement.

    The timing call is also the earliest proof that the user may change the schema: a refusal comes back
    beside the plan (a dry run reports it as a warning; an execution stops on it before asking anyone). A
    server error on it (5xx) costs the plan only its estimate: marked unknown, with the reason, no retries.
    A failure because the schema changed since the analysis (a dry run does not take the lease, so another
    run may be patching) is :class:`PlanRaced`, naming the run that holds the lease.
    """
    draft = build_plan(analysis, database=target.database, branch=target.branch)
    if not draft.operations:
        return draft, None
    sample = draft.operations[0]
    with open_gateway(target) as gateway:
        started = time.perf_counter()
        try:
            gateway.migrate(
                sample.to_operations(),
                author="oms-audit",
                message="audit-fields plan: timing dry run",
                dry_run=True,
            )
        except PermissionDenied as refused:
            return draft, refused
        except TerminusError as failed:
            raced = _raced(gateway, target, analysis.head_commit)
            if raced is not None:
                raise raced from failed
            if not isinstance(failed, TerminusServerError):
                raise
            # the plan stands; only its duration is unknown
            return draft.estimate_unavailable(f"the timing dry-run call failed: {failed}"), None
        seconds_per_call = time.perf_counter() - started
    plan = build_plan(analysis, database=target.database, branch=target.branch, seconds_per_call=seconds_per_call)
    return plan, None


RACE_LOG_COMMITS = 100
"""How far back the log is read for the commits that overtook a plan."""


def _raced(gateway: TerminusGateway, target: Target, analysed_head: str) -> PlanRaced | None:
    """PlanRaced when the branch moved since the analysis, naming who moved it: the run holding the lease
    (another run, still at work), else the runs or authors of the new commits (the log is the authority)."""
    log = gateway.log(count=RACE_LOG_COMMITS)
    head = log[0].id if log else analysed_head
    if head == analysed_head:
        return None
    try:
        with metadata_gateway(target_settings(target)) as meta:
            lease = read_lease(meta, target.database)
    except TerminusError:  # no metadata database yet, or it does not answer: the race is still reported
        lease = None
    if lease is not None and lease.run_id != str(flow_run.id):
        return PlanRaced(
            target.database,
            analysed_head,
            head,
            changed_by=f"the run {lease.holder}, which holds its lease",
            still_running=True,
        )
    names: list[str] = []
    for commit in commits_since(log, analysed_head) or log[:1]:
        run_id = run_of(commit)
        name = f"the migration run {run_id}" if run_id else f"'{commit.author}' (commit {commit.id[:12]})"
        if name not in names:
            names.append(name)
    return PlanRaced(target.database, analysed_head, head, changed_by=", ".join(names) or None, still_running=False)


@task(name="check-drift", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def check_for_drift(
    target: Target, approved: MigrationPlan, snapshot_path: str, include: list[str], exclude: list[str]
) -> SchemaAnalysis:
    """Re-analyse after the approval: the schema must equal the snapshot's and the operations the approved ones.

    Document writes that moved the head commit meanwhile are fine (a live ontology keeps being written);
    any schema change is drift and stops the run before it changes anything. Returns the fresh analysis,
    the baseline for validation.
    """
    snapshot = SchemaSnapshot.load(Path(snapshot_path))
    with open_gateway(target) as gateway:
        current, schema = _analyze(gateway, include, exclude)
    replanned = build_plan(current, database=target.database, branch=target.branch)
    check_drift(approved, replanned, planned_schema=snapshot.schema_documents, current_schema=schema)
    return current
