"""The commits an audit-fields run makes, and how to find them again in a branch log.

Each patched type is one commit whose message names the run and whose recorded migration lists exactly
the ``CreateClassProperty`` operations applied. The log, not the run's own bookkeeping, is therefore the
authority on what a run added: a crash between the commit and the report cannot make the two disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.terminus import Commit

PATCH_MESSAGE_PREFIX = "oms-audit: add audit fields"
ROLLBACK_MESSAGE_PREFIX = "oms-audit: roll back audit fields"


def patch_message(run_id: str) -> str:
    return f"{PATCH_MESSAGE_PREFIX} (run {run_id})"


def rollback_message(run_id: str) -> str:
    return f"{ROLLBACK_MESSAGE_PREFIX} (run {run_id})"


def run_of(commit: Commit) -> str | None:
    """The id of the audit-fields run that made this commit (a patch or a rollback), or None."""
    for prefix in (PATCH_MESSAGE_PREFIX, ROLLBACK_MESSAGE_PREFIX):
        if commit.message.startswith(f"{prefix} (run ") and commit.message.endswith(")"):
            return commit.message[len(prefix) + len(" (run ") : -1]
    return None


def commits_of_run(log: Iterable[Commit], run_id: str) -> list[Commit]:
    """The run's patch commits, newest first (as the log lists them)."""
    return [commit for commit in log if commit.message == patch_message(run_id)]


def fields_added(commits: Iterable[Commit]) -> dict[str, set[str]]:
    """class -> properties created by these commits' recorded migrations."""
    added: dict[str, set[str]] = {}
    for commit in commits:
        for operation in commit.migration or []:
            if operation.get("@type") == "CreateClassProperty":
                added.setdefault(str(operation["class"]), set()).add(str(operation["property"]))
    return added


def commits_since(log: Sequence[Commit], commit_id: str) -> list[Commit] | None:
    """Commits newer than ``commit_id`` (newest first), or None when it is not in this branch's history."""
    for index, commit in enumerate(log):
        if commit.id == commit_id:
            return list(log[:index])
    return None


@dataclass
class RunChanges:
    """What one run's commits changed, read from the log: the classes, and its newest commit."""

    classes: set[str] = field(default_factory=set)
    last_commit: str | None = None


def classes_changed_by_run(log: Iterable[Commit], run_id: str) -> RunChanges:
    """The classes a migration or rollback run changed (one commit per class), and its newest commit."""
    messages = {patch_message(run_id), rollback_message(run_id)}
    changes = RunChanges()
    for commit in log:
        if commit.message not in messages:
            continue
        changes.last_commit = changes.last_commit or commit.id
        for operation in commit.migration or []:
            if operation.get("class") is not None:
                changes.classes.add(str(operation["class"]))
    return changes
