"""Closing a run's books: final status, head commit, JSON report, history record, report artifacts.

Runs in the flow's ``finally``, so it must never raise: a failure to write one of them is logged and the
others still happen, and the run's own outcome (and the CLI's exit code) stays the one that matters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.errors import category_of
from core.migration_report import (
    FINAL_STATUSES,
    ErrorEntry,
    RunReport,
    save_report,
    utc_now,
)

from .artifacts import publish_report
from .run_tracking import RunTracker


def record_failure(report: RunReport, exc: BaseException) -> None:
    report.status = "failed"
    if isinstance(exc, Exception):
        report.errors.append(ErrorEntry.from_exception(exc))
    else:  # KeyboardInterrupt, cancellation: the run was stopped from outside
        report.errors.append(
            ErrorEntry(
                type=type(exc).__name__, message="the run was interrupted before it finished", category=category_of(exc)
            )
        )


def _quietly(what: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as exc:
        get_run_logger().warning("Could not %s: %s", what, exc)
        return None


@task(name="report", cache_policy=NO_CACHE)
def publish_report_artifacts(report: RunReport, path: Path) -> None:
    publish_report(report, path)


def close_report(report: RunReport, path: Path, tracker: RunTracker | None) -> None:
    if report.status not in FINAL_STATUSES:
        record_failure(report, KeyboardInterrupt())
    if tracker is not None and report.head_commit_before:
        report.head_commit_after = _quietly("read the run's last commit", tracker.last_commit)
    report.finished_at = utc_now()
    _quietly("write the report", lambda: save_report(report, path))
    if tracker is not None:
        _quietly("record the run history", tracker.record)
        tracker.close()
    _quietly("publish the report artifacts", lambda: publish_report_artifacts(report, path))
    get_run_logger().info("Report written to %s", path)
