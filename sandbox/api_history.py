"""``GET /api/log/{path}`` (commit log) and ``GET /api/history/{path}`` (per-document history).

Both walk the parent chain of immutable commits; a document's history is derived by comparing each commit's
snapshot with its parent's (identity first, so unchanged documents cost nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sandbox import documents as docs_mod
from sandbox.auth import COMMIT_READ, INSTANCE_READ
from sandbox.context import Call, require_access
from sandbox.descriptors import commit_of, database_of, parse
from sandbox.errors import ApiError
from sandbox.params import Params, bad_parameter
from sandbox.store import Commit
from sandbox.wire import Response, dump_json, json_response

LOG_ERROR_TYPE = "api:LogErrorResponse"
HISTORY_ERROR_TYPE = "api:HistoryErrorResponse"


def _bad_descriptor(path: str) -> ApiError:
    return ApiError(
        {"@type": "api:BadDescriptorPath", "api:descriptor": path},
        f"Bad descriptor path: {path}",
    )


def _no_history(path: str) -> ApiError:
    return ApiError(
        {"@type": "api:ResourceHasNoHistory", "api:resource": path},
        f"The following resource has no history: {path}",
    )


def get_log(call: Call) -> Response:
    params = Params(call.request.query)
    start = params.integer("start", 0)
    count = params.integer("count", -1)
    params.boolean("verbose", False)
    descriptor = parse(call.rest)
    if descriptor is None:
        raise _bad_descriptor(call.rest)
    if descriptor.kind in ("system", "meta", "commits"):
        raise _no_history(descriptor.text())
    db = database_of(call.store, descriptor)
    head = commit_of(db, descriptor)
    require_access(call.user, COMMIT_READ, db)
    chain = db.history(head)
    start = max(start, 0)
    selected = chain[start:] if count < 0 else chain[start : start + count]
    return json_response([commit.document(db.parent_of(commit)) for commit in selected])


def _entry(commit: Commit, complete: bool, parent: Commit | None) -> dict[str, Any]:
    if complete:
        doc = commit.document(parent)
        doc.pop("@id")
        doc.pop("@type")
        return doc
    return {
        "author": commit.author,
        "identifier": commit.identifier,
        "message": commit.message,
        "timestamp": commit.timestamp,
        "user": commit.user,
    }


def _diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    if before is None:
        return {"@op": "Insert", "@insert": after}
    if after is None:
        return {"@op": "Delete", "@delete": before}
    diff: dict[str, Any] = {"@id": after.get("@id")}
    for key in list(before) + [k for k in after if k not in before]:
        if key == "@id" or before.get(key) == after.get(key):
            continue
        change: dict[str, Any] = {"@op": "SwapValue"}
        if key in before:
            change["@before"] = before[key]
        if key in after:
            change["@after"] = after[key]
        diff[key] = change
    return diff


def _iso_param(params: Params, name: str) -> float | None:
    value = params.text(name)
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_parameter(name, "ISO 8601 date-time", value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def get_history(call: Call) -> Response:
    body = call.request.json_object_body()
    params = Params(call.request.query, body)
    doc_id = params.text("id", required=True)
    assert doc_id is not None
    start = params.non_negative_integer("start", 0) or 0
    count = params.non_negative_integer("count", None)
    created = params.boolean("created", False)
    updated = params.boolean("updated", False)
    params.graph_type()
    complete = params.boolean("complete", False)
    with_diff = params.boolean("diff", False)
    streaming = params.boolean("streaming", False)
    if params.boolean("fast", False):
        raise ApiError(
            {"@type": "api:FastHistoryNotAvailable"},
            "Fast history is not available on this server",
        )
    before = _iso_param(params, "before")
    after = _iso_param(params, "after")
    descriptor = parse(call.rest)
    if descriptor is None:
        raise _bad_descriptor(call.rest)
    if descriptor.kind != "branch":
        raise _no_history(descriptor.text())
    db = database_of(call.store, descriptor)
    head = commit_of(db, descriptor)
    require_access(call.user, INSTANCE_READ, db)
    key = docs_mod.compress_id(head.schema, doc_id)
    entries: list[dict[str, Any]] = []
    for commit in db.history(head):
        parent = db.parent_of(commit)
        now = commit.lookup(key)
        previous = parent.lookup(key) if parent is not None else None
        if now is previous or now == previous:
            continue
        if before is not None and commit.timestamp >= before:
            continue
        if after is not None and commit.timestamp <= after:
            continue
        entry = _entry(commit, complete, parent)
        if with_diff:
            entry["diff"] = _diff(previous, now)
        entries.append(entry)
    if created or updated:
        result: dict[str, Any] = {}
        if created and entries:
            result["created"] = entries[-1]
        if updated and entries:
            result["updated"] = entries[0]
        return json_response(result)
    selected = entries[start:] if count is None else entries[start : start + count]
    if streaming:
        body_bytes = b"".join(dump_json(entry) + b"\n" for entry in selected)
        return Response(200, body_bytes, "application/x-ndjson")
    return json_response(selected)
