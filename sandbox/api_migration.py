"""``POST /api/migration/{branch path}``: explicit schema migrations, one commit per call.

Parameters come from the JSON body or the query string (query wins). ``dry_run`` computes the result without
validating or committing. The operations are recorded JSON-encoded on the commit so that ``target`` mode (and
the log) can replay them.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox import migration as migration_mod
from sandbox.auth import INSTANCE_WRITE, SCHEMA_WRITE
from sandbox.context import Call, require_access
from sandbox.descriptors import Descriptor, commit_of, database_of, parse, unresolvable
from sandbox.errors import ApiError
from sandbox.params import LIST, Params, missing_parameter
from sandbox.store import Commit, Database
from sandbox.wire import Response, json_response, require_json_content_type

ERROR_TYPE = "api:MigrationErrorResponse"


def _schema_changed(db: Database, commit: Commit) -> bool:
    parent = db.parent_of(commit)
    if parent is None:
        return not commit.initial and len(commit.schema) > 1
    return commit.schema is not parent.schema and commit.schema != parent.schema


def _migrations_since(db: Database, head: Commit, ancestor: str | None) -> list[list[dict[str, Any]]]:
    """Recorded migrations from ``ancestor`` (exclusive) up to ``head``, oldest first."""
    result: list[list[dict[str, Any]]] = []
    for commit in db.history(head):
        if commit.identifier == ancestor:
            break
        if commit.migration is not None:
            result.append(json.loads(commit.migration))
        elif _schema_changed(db, commit):
            raise ApiError(
                {"@type": "api:NoMigrationAtCommit", "api:commit_id": commit.identifier},
                f"The commit {commit.identifier} changed the schema without a recorded migration",
            )
    result.reverse()
    return result


def _operations_from_target(db: Database, head: Commit, target_path: str) -> list[Any]:
    """``target`` mode: the target branch's migrations we have not applied yet."""
    target = parse(target_path)
    if target is None or target.kind != "branch":
        raise ApiError(
            {"@type": "api:BadTargetAbsoluteDescriptor", "api:absolute_descriptor": target_path},
            f"Bad target descriptor: {target_path}",
        )
    target_db = db if (target.org, target.db) == (db.org, db.name) else None
    if target_db is None:
        raise ApiError({"@type": "api:NoCommonHistory"}, "The branches have no common history")
    target_head = commit_of(target_db, target)
    ours = {c.identifier for c in db.history(head)}
    ancestor = next((c.identifier for c in db.history(target_head) if c.identifier in ours), None)
    if ancestor is None:
        raise ApiError({"@type": "api:NoCommonHistory"}, "The branches have no common history")
    mine = _migrations_since(db, head, ancestor)
    theirs = _migrations_since(db, target_head, ancestor)
    if mine != theirs[: len(mine)]:
        raise ApiError(
            {"@type": "api:NoCommonMigrationPrefix"},
            "The migrations of the two branches do not share a common prefix",
        )
    return [op for ops in theirs[len(mine) :] for op in ops]


def post_migration(call: Call) -> Response:
    if call.request.has_body:
        require_json_content_type(call.request)
    body = call.request.json_object_body()
    params = Params(call.request.query, body)
    author = params.text("author", required=True)
    message = params.text("message", required=True)
    operations = params.json_value("operations", LIST)
    target = params.text("target")
    if operations is None and target is None:
        raise missing_parameter("operations")
    dry_run = params.boolean("dry_run", False)
    verbose = params.boolean("verbose", False)
    descriptor = parse(call.rest)
    if descriptor is None:
        raise unresolvable(Descriptor("branch", name=call.rest))
    db = database_of(call.store, descriptor)
    if descriptor.kind != "branch":
        raise unresolvable(descriptor)
    commit_of(db, descriptor)
    require_access(call.user, SCHEMA_WRITE, db)
    require_access(call.user, INSTANCE_WRITE, db)
    with db.lock:
        head = commit_of(db, descriptor)
        if operations is None:
            assert target is not None
            operations = _operations_from_target(db, head, target)
        schema, instances, instance_operations = migration_mod.apply_operations(
            head.schema, head.instances, operations, validate=not dry_run
        )
        if operations and not dry_run:
            db.commit(
                descriptor.name,
                schema,
                instances,
                author=author or "",
                message=message or "",
                user=call.user.iri,
                migration=json.dumps(operations),
            )
    call.store.save()
    reply: dict[str, Any] = {
        "@type": "api:MigrationResponse",
        "api:status": "api:success",
        "schema_operations": len(operations),
        "instance_operations": instance_operations,
    }
    if verbose:
        reply["schema"] = list(schema.values())
    return json_response(reply)
