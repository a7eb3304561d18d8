"""What rolling back audit fields means: the reverse of what was applied, computed rather than hand-written.

The source is a migration report (remove what that run added, read from its commits in the branch log) or a
schema snapshot (remove every audit field the snapshot's classes did not have). Two strategies:
``remove_fields`` (default) — ``DeleteClassProperty`` per type, later changes survive; ``reset`` — move
the branch back to the snapshot's commit, allowed only when every commit since then is an audit-fields
patch, so nobody else's work is discarded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from core.audit_fields import AUDIT_FIELDS
from core.errors import ConfigError, RollbackRefused
from core.migration_commits import PATCH_MESSAGE_PREFIX, commits_of_run, commits_since, fields_added
from core.migration_plan import AddAuditFields, RemoveAuditFields, ResetBranch, SchemaOperation
from core.schema_documents import SchemaDocuments, own_properties, without_fields
from core.schema_snapshot import SchemaSnapshot
from core.terminus import Commit

Strategy = Literal["remove_fields", "reset"]


class RollbackSource(BaseModel):
    """Where the rollback's facts come from: a migration report or a bare schema snapshot."""

    path: str
    env: str | None
    database: str
    branch: str
    snapshot_head: str | None
    snapshot_schema: SchemaDocuments | None = None
    run_id: str | None = None


class RollbackPlan(BaseModel):
    source: str
    database: str
    branch: str
    strategy: Strategy
    reset_to_commit: str | None = None
    removals: list[RemoveAuditFields]

    @property
    def removed(self) -> dict[str, list[str]]:
        return {r.class_name: sorted(r.fields) for r in self.removals}

    def operations(self, head: str) -> list[SchemaOperation]:
        """What the runtime applies, from ``head``: the reset, or the removals (the reverse of the run's adds)."""
        if self.strategy == "reset" and self.reset_to_commit:
            return [ResetBranch(to_commit=self.reset_to_commit, from_commit=head)]
        return list(self.removals)

    def expected_schema(self, source: RollbackSource, current_schema: SchemaDocuments) -> tuple[SchemaDocuments, str]:
        """(the schema the rollback must leave, what that is in words), for the check after applying it."""
        if self.strategy == "reset":
            assert source.snapshot_schema is not None  # plan_rollback refuses a reset without one
            return source.snapshot_schema, "the snapshot's"
        return without_fields(current_schema, self.removed), "the schema minus the removed fields"

    def change(self) -> str:
        """The change itself, comparable between two plannings."""
        return f"{self.strategy}:{self.reset_to_commit}:{sorted(self.removed.items())}"

    def fingerprint(self, head: str) -> str:
        """What the approver approves: this exact change from this exact head."""
        return f"{head}:{self.change()}"

    def to_markdown(self) -> str:
        lines = [f"# Roll back audit fields on `{self.database}@{self.branch}`", "", f"From `{self.source}`.", ""]
        if self.strategy == "reset":
            lines.append(f"**Reset** the branch to commit `{self.reset_to_commit}` (the snapshot before the run).")
        else:
            fields = sum(len(r.fields) for r in self.removals)
            lines.append(f"**Remove {fields} fields** from {len(self.removals)} types, one commit per type.")
        lines += [
            "",
            "Audit values written into these fields since the migration are deleted with them.",
            "",
            "| type | fields removed |",
            "| --- | --- |",
        ]
        lines += [f"| {name} | {', '.join(fields)} |" for name, fields in self.removed.items()]
        return "\n".join(lines)


def source_from_report(report: dict[str, Any], path: str, snapshot_schema: SchemaDocuments | None) -> RollbackSource:
    if report.get("mode") != "execute":
        raise RollbackRefused(
            f"{path} is a dry-run report: that run changed nothing, so there is nothing to roll back."
        )
    return RollbackSource(
        path=path,
        env=report.get("env"),
        database=report["database"],
        branch=report["branch"],
        snapshot_head=report.get("head_commit_before"),
        snapshot_schema=snapshot_schema,
        run_id=report["run_id"],
    )


def load_rollback_source(path: Path) -> RollbackSource:
    """A migration report (preferred: it names the run) or a schema snapshot file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} does not exist; pass the report (or snapshot) path printed by the migration."
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable JSON: {exc}") from exc
    if isinstance(data, dict) and "schema_documents" in data:
        snapshot = SchemaSnapshot.load(path)
        return RollbackSource(
            path=path.name,
            env=None,
            database=snapshot.database,
            branch=snapshot.branch,
            snapshot_head=snapshot.head_commit,
            snapshot_schema=snapshot.schema_documents,
        )
    if not isinstance(data, dict) or not {"mode", "database", "branch", "run_id"} <= data.keys():
        raise ConfigError(f"{path} is neither an audit-fields migration report nor a schema snapshot.")
    snapshot_file = Path(data["snapshot_path"]) if data.get("snapshot_path") else None
    schema = SchemaSnapshot.load(snapshot_file).schema_documents if snapshot_file and snapshot_file.exists() else None
    return source_from_report(data, path.name, schema)


def _added(source: RollbackSource, log: Sequence[Commit], schema: SchemaDocuments) -> dict[str, set[str]]:
    if source.run_id is not None:
        return fields_added(commits_of_run(log, source.run_id))
    before = own_properties(source.snapshot_schema or [])
    now = own_properties(schema)
    return {
        name: {field for field in now[name] - before[name] if field in AUDIT_FIELDS}
        for name in before.keys() & now.keys()
    }


def plan_rollback(
    source: RollbackSource,
    *,
    current_schema: SchemaDocuments,
    log: Sequence[Commit],
    reset: bool = False,
) -> RollbackPlan:
    """Refuses (RollbackRefused) what would be unsafe or meaningless, saying what to do instead."""
    present = own_properties(current_schema)
    removals = []
    for class_name, fields in sorted(_added(source, log, current_schema).items()):
        still_there = sorted(fields & present.get(class_name, set()))
        if still_there:
            forward = AddAuditFields(class_name=class_name, fields={f: AUDIT_FIELDS[f] for f in still_there})
            removals.append(forward.reverse())
    plan = RollbackPlan(
        source=source.path,
        database=source.database,
        branch=source.branch,
        strategy="reset" if reset else "remove_fields",
        removals=removals,
    )
    if reset:
        if not source.snapshot_head:
            raise RollbackRefused(f"{source.path} names no snapshot commit to reset to; roll back without --reset.")
        newer = commits_since(log, source.snapshot_head)
        if newer is None:
            raise RollbackRefused(
                f"Commit {source.snapshot_head} is not in the history of {source.branch}; roll back without --reset."
            )
        foreign = [c for c in newer if not c.message.startswith(PATCH_MESSAGE_PREFIX)]
        if foreign:
            raise RollbackRefused(
                f"{len(foreign)} other commit(s) followed the snapshot (newest: {foreign[0].id} by "
                f"{foreign[0].author}: {foreign[0].message!r}); a reset would discard them. Roll back without --reset."
            )
        if not newer:
            raise RollbackRefused(f"{source.branch} is still at the snapshot's commit; there is nothing to reset.")
        if source.snapshot_schema is None:
            raise RollbackRefused(
                f"{source.path} has no readable snapshot to check the reset against (its snapshot file is missing "
                "or unreadable); nothing was changed. Restore the snapshot file or roll back without --reset."
            )
        plan.reset_to_commit = source.snapshot_head
    elif not removals:
        raise RollbackRefused(f"None of the fields added by the run in {source.path} are in the schema; nothing to do.")
    return plan
